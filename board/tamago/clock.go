//go:build tamago && amd64

package tamago

import (
	"time"
)

// i8254 PIT
const (
	pitHz      = 1193182
	pitCh0     = 0x40
	pitCmd     = 0x43
	calibTicks = pitHz / 40 // 25 ms
)

// MC146818 RTC
const (
	rtcIndex = 0x70
	rtcData  = 0x71
	rtcRegA  = 0x0a
	rtcUIP   = 1 << 7
)

var (
	hookTSC uint64 // TSC at the first board hook (Hwinit1)
	tscHz   uint64
	// ClockSource names what the TSC was calibrated against.
	clockSource string
)

// pitCount latches and reads PIT channel 0.
func pitCount() uint16 {
	pio.Out8(pitCmd, 0x00) // latch channel 0
	lo := pio.In8(pitCh0)
	hi := pio.In8(pitCh0)
	return uint16(hi)<<8 | uint16(lo)
}

// calibrateByPIT counts TSC ticks across calibTicks PIT ticks. Channel 0 is
// used (its gate is always on; channel 2 needs port 0x61, which microvm does
// not have) in mode 2 with the maximum period, polled faster than it wraps
// (55 ms).
func calibrateByPIT() (hz uint64, ok bool) {
	pio.Out8(pitCmd, 0x34) // channel 0, lobyte/hibyte, mode 2, binary
	pio.Out8(pitCh0, 0)
	pio.Out8(pitCh0, 0)

	// start on a counter edge; give up if the PIT is absent/stuck
	prev := pitCount()
	for i := 0; ; i++ {
		if c := pitCount(); c != prev {
			prev = c
			break
		}
		if i > 100000 {
			return 0, false
		}
	}

	t0 := rdtsc()
	var ticks uint64
	for ticks < calibTicks {
		c := pitCount()
		ticks += uint64(prev - c)
		prev = c
	}
	return (rdtsc() - t0) * pitHz / ticks, true
}

// calibrateByRTC counts TSC ticks across one RTC second (update-in-progress
// rising edges).
func calibrateByRTC() (hz uint64, ok bool) {
	uip := func() bool {
		pio.Out8(rtcIndex, rtcRegA)
		return pio.In8(rtcData)&rtcUIP != 0
	}
	edge := func() bool {
		for i := 0; uip(); i++ {
			if i > 10000000 {
				return false
			}
		}
		for i := 0; !uip(); i++ {
			if i > 10000000 {
				return false
			}
		}
		return true
	}
	if !edge() {
		return 0, false
	}
	t0 := rdtsc()
	if !edge() {
		return 0, false
	}
	return rdtsc() - t0, true
}

// calibrate sets the TSC rate of GetTime, keeping time monotonic across the
// change (before it, 1 TSC tick counted as 1 ns).
func calibrate() {
	hz, ok := calibrateByPIT()
	clockSource = "pit"
	if !ok {
		hz, ok = calibrateByRTC()
		clockSource = "rtc"
	}
	if !ok || hz == 0 {
		print("tamago board: TSC calibration failed, time is wrong\n")
		clockSource = "none"
		return
	}
	tscHz = hz

	now := AMD64.GetTime()
	tsc := rdtsc()
	AMD64.TimerMultiplier = 1e9 / float64(hz)
	AMD64.TimerOffset = now - int64(float64(tsc)*AMD64.TimerMultiplier)
}

// TSCHz returns the calibrated TSC frequency and what it was measured
// against ("pit", "rtc" or "none").
func TSCHz() (hz uint64, source string) {
	return tscHz, clockSource
}

func tscDuration(ticks uint64) time.Duration {
	if tscHz == 0 {
		return 0
	}
	return time.Duration(float64(ticks) * 1e9 / float64(tscHz))
}

// SinceReset returns the time since CPU reset: QEMU (TCG and KVM) starts
// the TSC at 0 on reset, so this covers firmware, image loading and runtime
// start-up.
func SinceReset() time.Duration {
	return tscDuration(rdtsc())
}

// SinceHook returns the time since the board's first hook ran (Hwinit1,
// right after the Go scheduler was set up), i.e. Go-side boot time.
func SinceHook() time.Duration {
	return tscDuration(rdtsc() - hookTSC)
}

// HookAt returns SinceReset as it was when the first board hook ran.
func HookAt() time.Duration {
	return tscDuration(hookTSC)
}

// CMOS RTC registers for the wall clock.
const (
	rtcSeconds = 0x00
	rtcMinutes = 0x02
	rtcHours   = 0x04
	rtcDay     = 0x07
	rtcMonth   = 0x08
	rtcYear    = 0x09
	rtcRegB    = 0x0b
	rtcBinary  = 1 << 2
)

// setWallClock starts the clock at the RTC's date and time (QEMU keeps it
// in UTC), so time.Now — and the dump time in the KDH — is real. It runs
// before anything reads the clock, so the jump is not observed.
func setWallClock() {
	for i := 0; i < 1000000; i++ { // wait out an update in progress
		pio.Out8(rtcIndex, rtcRegA)
		if pio.In8(rtcData)&rtcUIP == 0 {
			break
		}
	}
	pio.Out8(rtcIndex, rtcRegB)
	binary := pio.In8(rtcData)&rtcBinary != 0
	read := func(reg uint8) int64 {
		pio.Out8(rtcIndex, reg)
		v := pio.In8(rtcData)
		if !binary {
			v = v&0x0f + v>>4*10
		}
		return int64(v)
	}
	sec, min, hour := read(rtcSeconds), read(rtcMinutes), read(rtcHours)
	day, month, year := read(rtcDay), read(rtcMonth), 2000+read(rtcYear)
	if month < 1 || month > 12 || day < 1 || day > 31 {
		return // no RTC: time stays relative to boot
	}
	secs := daysFromCivil(year, month, day)*86400 + hour*3600 + min*60 + sec
	// SetTime sets the absolute time. The clock before it counts TSC
	// ticks at the rate the CPU reported before calibration, from no
	// meaningful origin: no offset to keep (adding it put the dump time
	// 11 hours ahead under TCG).
	AMD64.SetTime(secs * 1e9)
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d
// (proleptic Gregorian calendar).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
