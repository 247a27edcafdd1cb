package bench

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// userHz is the unit of /proc/stat (USER_HZ, 100 on every Linux ABI Go
// supports).
const userHz = 100

// machineBusy is the CPU time all processes on the machine have used
// (every field of /proc/stat's cpu line but idle and iowait), or -1 where
// /proc/stat is not readable (not Linux). The machine is shared, so this
// minus [processCPU] says how much others took during a run.
func machineBusy() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return -1
	}
	var busy int64
	for i, f := range fields[1:] {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return -1
		}
		// Fields: user nice system idle iowait irq softirq steal guest
		// guest_nice; guest time is already counted in user and nice.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / userHz
}
