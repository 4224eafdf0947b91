/**
 * Failures and slowness ordered up front: each WeChat API answer first waits the configured
 * latency, then takes the next queued fault, if any, instead of answering.
 */
export type SandboxFault = number | "http500" | "malformed" | "hang";

export const isSandboxFault = (value: unknown): value is SandboxFault =>
  typeof value === "number" || value === "http500" || value === "malformed" || value === "hang";

export function createFaults(initialLatencyMs = 0) {
  const queued: SandboxFault[] = [];
  let latencyMs = initialLatencyMs;
  return {
    failNext(fault: SandboxFault, times = 1): void {
      for (let i = 0; i < times; i++) queued.push(fault);
    },
    get queued(): number {
      return queued.length;
    },
    get latencyMs(): number {
      return latencyMs;
    },
    setLatency(ms: number): void {
      latencyMs = ms;
    },
    /** Waits the latency, then hands out the next fault (undefined: answer normally). */
    async next(): Promise<SandboxFault | undefined> {
      if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
      return queued.shift();
    },
    reset(): void {
      queued.length = 0;
      latencyMs = initialLatencyMs;
    },
  };
}
