package oci

// DefaultCapabilities is Docker's default capability set: enough for
// package managers and servers, without the administrative ones.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultMaskedPaths and DefaultReadonlyPaths are Docker's lists.
var (
	DefaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	DefaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// DefaultPath is used when neither the image nor the caller sets PATH.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// CPUPeriod is the CFS period used for CPU quotas, in microseconds.
const CPUPeriod = 100000

// MinMemoryBytes is the smallest memory limit accepted: below it the
// sandbox (Sentry + gofer) cannot even boot.
const MinMemoryBytes = 16 << 20

// Annotations the node records in config.json.
const (
	// AnnotationNetwork records the runsc --network mode the bundle expects.
	AnnotationNetwork = "dev.pinacle.network"
	// AnnotationCPUQuota carries a CPU quota (µs per CPUPeriod) that the
	// spec leaves out for the runtime to apply once the container has
	// started (SpecOptions.DeferCPUQuota).
	AnnotationCPUQuota = "dev.pinacle.cpu-quota"
	// AnnotationInitCapabilities lists (comma-separated) capabilities the
	// container's init holds and exec'd processes must not get
	// (SpecOptions.InitCapabilities).
	AnnotationInitCapabilities = "dev.pinacle.init-capabilities"
)
