import fs from "node:fs";

/**
 * Peak resident memory of this process over one test. On Linux the kernel's high-water mark (VmHWM)
 * can be reset by writing 5 to /proc/self/clear_refs, which gives a true per-test peak without a
 * sampling timer that would steal time from the measurement. Elsewhere: the RSS after the test,
 * raised to at least what was seen before it.
 */
export interface PeakMemoryProbe {
  reset(): void;
  peakBytes(): number | null;
}

function readHighWaterMark(): number | null {
  try {
    const status = fs.readFileSync("/proc/self/status", "utf8");
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function createPeakMemoryProbe(): PeakMemoryProbe {
  let canReset = process.platform === "linux";
  let fallbackPeak = 0;
  return {
    reset() {
      fallbackPeak = process.memoryUsage.rss();
      if (!canReset) return;
      try {
        fs.writeFileSync("/proc/self/clear_refs", "5");
      } catch {
        canReset = false;
      }
    },
    peakBytes() {
      if (canReset) {
        const hwm = readHighWaterMark();
        if (hwm !== null) return hwm;
      }
      fallbackPeak = Math.max(fallbackPeak, process.memoryUsage.rss());
      return fallbackPeak;
    },
  };
}
