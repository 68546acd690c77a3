package main

import (
	"sipvigil/proxy/config"
	"sipvigil/proxy/txn"
)

func txnTimers(t config.Timers) txn.Timers {
	return txn.Timers{T1: t.T1, T2: t.T2, T4: t.T4}
}
