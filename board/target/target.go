// Package target is the board the image is built for, chosen by build
// tags: TamaGo's microvm board (GOOS=tamago GOARCH=amd64), the i.MX6UL
// board (GOOS=tamago GOARCH=arm) or the stock-Go board on the shim
// (GOOS=linux GOARCH=amd64).
package target
