import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU (and memory) accounting from /proc (Linux; elsewhere the figures are NaN). Throughput on a shared 2-core
 * VM swings ±30% between runs; CPU per call does not, and the breakdown shows who used the machine.
 */
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux build
const ticksToMs = (ticks: number) => (ticks * 1000) / CLOCK_TICKS_PER_SECOND;

/** utime + stime (ms) and the command name from a /proc/<pid>[/task/<tid>]/stat file. */
function readStat(path: string): { comm: string; ms: number } | undefined {
  try {
    const stat = readFileSync(path, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    return { comm, ms: ticksToMs(Number(fields[11]) + Number(fields[12])) }; // fields 14 and 15
  } catch {
    return undefined;
  }
}

/** CPU time (user + system, ms) a process has used so far. */
export function processCpuMs(pid: number): number | undefined {
  return readStat(`/proc/${pid}/stat`)?.ms;
}

/** Runs `work` of `calls` calls and adds the CPU time per call (µs) process `pid` spent on it. */
export async function withCpuPerCall<R extends object>(
  pid: number,
  calls: number,
  work: () => R | Promise<R>,
): Promise<R & { cpuUs: number }> {
  const before = processCpuMs(pid);
  const result = await work();
  const after = processCpuMs(pid);
  const cpuUs = before === undefined || after === undefined ? Number.NaN : ((after - before) * 1000) / calls;
  return { ...result, cpuUs };
}

/** Who used the machine during a run, in µs of CPU per call. */
export interface CpuBreakdown {
  service: number;
  /** The service's main thread alone: Connect, Login and everything but the gRPC thread. */
  serviceMainThread: number;
  postgres: number;
  redis: number;
  /** This process: the load generator and the WeChat sandbox. */
  loadAndSandbox: number;
  /** Everything else on the machine, kernel threads included. */
  other: number;
  idle: number;
  /** Idle while a disk write was pending (Postgres's WAL flushes). */
  iowait: number;
  /** Time the hypervisor gave our vCPUs to someone else. */
  steal: number;
}

interface Snapshot {
  byPid: Map<number, { comm: string; ms: number }>;
  serviceMainMs: number;
  /** From /proc/stat, all CPUs: busy, idle, iowait and steal. */
  busyMs: number;
  idleMs: number;
  iowaitMs: number;
  stealMs: number;
}

function snapshot(servicePid: number): Snapshot {
  const byPid = new Map<number, { comm: string; ms: number }>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(`/proc/${pid}/stat`);
    if (stat) byPid.set(pid, stat);
  }
  const cpu =
    readFileSync("/proc/stat", "utf8").split("\n", 1)[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = cpu;
  return {
    byPid,
    serviceMainMs: readStat(`/proc/${servicePid}/task/${servicePid}/stat`)?.ms ?? Number.NaN,
    busyMs: ticksToMs(user + nice + system + irq + softirq),
    idleMs: ticksToMs(idle),
    iowaitMs: ticksToMs(iowait),
    stealMs: ticksToMs(steal),
  };
}

/**
 * Runs `work` of `calls` calls and adds where the machine's CPU went meanwhile, per call. A
 * process that started during the run counts from zero; one that ended is lost (the benches keep
 * their processes for the whole run).
 */
export async function withCpuBreakdown<R extends object>(
  servicePid: number,
  calls: number,
  work: () => R | Promise<R>,
): Promise<R & { cpu: CpuBreakdown }> {
  let before: Snapshot;
  try {
    before = snapshot(servicePid);
  } catch {
    const nan = Number.NaN;
    const cpu = {
      service: nan,
      serviceMainThread: nan,
      postgres: nan,
      redis: nan,
      loadAndSandbox: nan,
      other: nan,
      idle: nan,
      iowait: nan,
      steal: nan,
    };
    return { ...(await work()), cpu };
  }
  const result = await work();
  const after = snapshot(servicePid);
  const perCall = (ms: number) => (ms * 1000) / calls;
  const sums = { service: 0, postgres: 0, redis: 0, loadAndSandbox: 0 };
  for (const [pid, now] of after.byPid) {
    const spent = now.ms - (before.byPid.get(pid)?.ms ?? 0);
    if (pid === servicePid) sums.service += spent;
    else if (pid === process.pid) sums.loadAndSandbox += spent;
    else if (now.comm === "postgres") sums.postgres += spent;
    else if (now.comm === "redis-server") sums.redis += spent;
  }
  const busy = after.busyMs - before.busyMs;
  return {
    ...result,
    cpu: {
      service: perCall(sums.service),
      serviceMainThread: perCall(after.serviceMainMs - before.serviceMainMs),
      postgres: perCall(sums.postgres),
      redis: perCall(sums.redis),
      loadAndSandbox: perCall(sums.loadAndSandbox),
      other: perCall(Math.max(0, busy - sums.service - sums.postgres - sums.redis - sums.loadAndSandbox)),
      idle: perCall(after.idleMs - before.idleMs),
      iowait: perCall(after.iowaitMs - before.iowaitMs),
      steal: perCall(after.stealMs - before.stealMs),
    },
  };
}

export function formatCpuBreakdown(cpu: CpuBreakdown, unit: string): string {
  const f = (v: number) => v.toFixed(0);
  return `CPU µs/${unit}: service ${f(cpu.service)} (main thread ${f(cpu.serviceMainThread)}), Postgres ${f(cpu.postgres)}, Redis ${f(cpu.redis)}, load generator + sandbox ${f(cpu.loadAndSandbox)}, other ${f(cpu.other)}, idle ${f(cpu.idle)}, iowait ${f(cpu.iowait)}, steal ${f(cpu.steal)}`;
}

/** A process's resident memory (VmRSS) in MiB, from /proc. */
export function residentMiB(pid: number): number {
  return (
    Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN) / 1024
  );
}
