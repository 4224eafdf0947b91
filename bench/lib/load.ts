/**
 * A closed-loop load runner: `concurrency` workers each await one call at a time, for a fixed
 * number of calls. Reports throughput and latency percentiles. Bounded in count by design.
 */
export interface LoadResult {
  calls: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** The first failure's message, so errors in a run are explained, not just counted. */
  firstError?: string;
}

export async function runLoad(
  total: number,
  concurrency: number,
  call: (i: number) => Promise<unknown>,
): Promise<LoadResult> {
  const latencies = new Float64Array(total);
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const worker = async () => {
    for (let i = next++; i < total; i = next++) {
      const t0 = performance.now();
      try {
        await call(i);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.sort();
  const at = (q: number) => percentile(sorted, q) ?? 0;
  return {
    calls: total,
    errors,
    seconds,
    perSecond: total / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    firstError,
  };
}

/** The value at quantile `q` (0.5, 0.99) of values sorted in ascending order. */
export const percentile = (sorted: ArrayLike<number>, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function formatLoad(name: string, r: LoadResult): string {
  return `${name.padEnd(44)} ${r.perSecond.toFixed(0).padStart(7)}/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  (${r.calls} calls, ${r.errors} errors${r.firstError ? `, first: ${r.firstError}` : ""})`;
}
