package render

import (
	"fmt"
	"io"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
)

// ServiceState is a service's state, with its health when that says more
// (a running service whose check is failing, say).
func ServiceState(s api.ServiceInfo) string {
	st := string(s.State)
	if s.Health != "" && string(s.Health) != st {
		st += ", health " + string(s.Health)
	}
	return st
}

// Services writes a pod's services as table rows:
// NAME STATE PID RESTARTS SINCE LAST ERROR.
func Services(w io.Writer, st *api.ServiceStatus, now time.Time) {
	fmt.Fprintln(w, "NAME\tSTATE\tPID\tRESTARTS\tSINCE\tLAST ERROR")
	for _, s := range st.Services {
		pid := "-"
		if s.Pid > 0 {
			pid = fmt.Sprint(s.Pid)
		}
		since := "-"
		if !s.Since.IsZero() {
			since = now.Sub(s.Since).Round(time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, pid, s.Restarts, since, s.LastError)
	}
}

// Metrics writes a pod's resource use and per-port traffic as key/value
// rows; byte counts in binary units.
func Metrics(w io.Writer, m *api.Metrics) {
	fmt.Fprintf(w, "Pod:\t%s\n", m.PodID)
	if s := m.Sandbox; s != nil {
		fmt.Fprintf(w, "CPU time:\t%s\n", time.Duration(s.CPUUsageNanos).Round(time.Millisecond))
		mem := Bytes(int64(s.MemoryUsage))
		// An unlimited cgroup reports a limit near the int64 maximum.
		if s.MemoryLimit > 0 && s.MemoryLimit < 1<<62 {
			mem += " / " + Bytes(int64(s.MemoryLimit))
		}
		fmt.Fprintf(w, "Memory:\t%s (max %s)\n", mem, Bytes(int64(s.MemoryMaxUsage)))
		pids := fmt.Sprint(s.Pids)
		if s.PidsLimit > 0 {
			pids += fmt.Sprintf(" / %d", s.PidsLimit)
		}
		fmt.Fprintf(w, "Processes:\t%s\n", pids)
		fmt.Fprintf(w, "OOM kills:\t%d\n", s.OOMKills)
	} else {
		fmt.Fprintf(w, "Sandbox:\tnot running\n")
	}
	for _, p := range m.Ports {
		fmt.Fprintf(w, "Port %s (%d):\t%d conns (%d active, %d rejected), in %s, out %s\n",
			p.Name, p.HostPort, p.ConnsTotal, p.ConnsActive, p.ConnsRejected,
			Bytes(int64(p.BytesIn)), Bytes(int64(p.BytesOut)))
	}
}

// Health writes a pod's health verdict, states and services as key/value
// rows.
func Health(w io.Writer, h *api.Health) {
	verdict := "healthy"
	if !h.Healthy {
		verdict = "unhealthy"
	}
	fmt.Fprintf(w, "Pod:\t%s\n", h.PodID)
	fmt.Fprintf(w, "Health:\t%s\n", verdict)
	fmt.Fprintf(w, "State:\t%s\n", h.State)
	fmt.Fprintf(w, "Sandbox:\t%s\n", Dash(h.Sandbox))
	if h.Reason != "" {
		fmt.Fprintf(w, "Reason:\t%s\n", h.Reason)
	}
	for _, s := range h.Services {
		fmt.Fprintf(w, "Service %s:\t%s\n", s.Name, ServiceState(s))
	}
	for _, c := range h.Checks {
		if c.LastError != "" {
			fmt.Fprintf(w, "Check %s:\t%s (%s)\n", c.Name, c.Health, c.LastError)
		} else {
			fmt.Fprintf(w, "Check %s:\t%s\n", c.Name, c.Health)
		}
	}
}
