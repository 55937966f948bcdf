//go:build !race

package h2server

const raceOn = false
