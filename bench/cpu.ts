import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * Where the CPU went during a window, from /proc (Linux only; elsewhere the figures are empty).
 * Process times are in clock ticks; a process that exits during the window is only in the machine total.
 */
export interface CpuSnapshot {
  at: number;
  machineBusyTicks: number;
  /** Time the kernel spent in interrupts and softirqs (loopback TCP lands here), on no process' account. */
  machineIrqTicks: number;
  processes: Map<number, { comm: string; ticks: number }>;
}

export interface CpuGroups {
  api: number[];
  workers: number[];
  /** Backends connected to the bench database. */
  postgresBench: number[];
  /** Postgres' background processes (WAL writer, checkpointer, autovacuum, ...). */
  postgresBackground: number[];
}

/** CPU seconds per group over the window, and the window's wall seconds. */
export type CpuUsage = Record<
  | 'wallSeconds'
  | 'api'
  | 'workers'
  | 'postgresBench'
  | 'postgresBackground'
  | 'postgresOther'
  | 'redis'
  | 'loadGenerator'
  | 'kernelIrq'
  | 'everythingElse'
  | 'machineBusy',
  number
> & {
  /** The busiest processes outside the groups above, e.g. other work running on the machine. */
  topOtherProcesses: { comm: string; pid: number; seconds: number }[];
};

const clockTicks = (() => {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const value = Number(result.stdout?.trim());
  return Number.isInteger(value) && value > 0 ? value : 100;
})();

/** From the first line of /proc/stat: user nice system idle iowait irq softirq steal. */
function readMachineTicks(): { busy: number; irq: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, irq: (fields[5] ?? 0) + (fields[6] ?? 0) };
}

function readProcess(pid: number): { comm: string; ticks: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    const rest = stat.slice(close + 2).split(' ');
    // Fields 14 and 15 of stat(5): utime and stime; `rest` starts at field 3.
    return { comm: stat.slice(open + 1, close), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return null; // the process exited meanwhile
  }
}

export function cpuSnapshot(): CpuSnapshot {
  const processes = new Map<number, { comm: string; ticks: number }>();
  let machine = { busy: 0, irq: 0 };
  try {
    machine = readMachineTicks();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const info = readProcess(Number(name));
      if (info) processes.set(Number(name), info);
    }
  } catch {
    // Not Linux: no figures.
  }
  return { at: Date.now(), machineBusyTicks: machine.busy, machineIrqTicks: machine.irq, processes };
}

export function cpuUsage(start: CpuSnapshot, end: CpuSnapshot, groups: CpuGroups): CpuUsage {
  const delta = (pid: number) => {
    const after = end.processes.get(pid);
    if (!after) return 0;
    // A process born during the window spent all its ticks inside it.
    return after.ticks - (start.processes.get(pid)?.ticks ?? 0);
  };
  const sum = (pids: Iterable<number>) => [...pids].reduce((total, pid) => total + delta(pid), 0);
  const byComm = (comm: string, except: Set<number>) =>
    [...end.processes].filter(([pid, info]) => info.comm === comm && !except.has(pid)).map(([pid]) => pid);

  const known = new Set([...groups.postgresBench, ...groups.postgresBackground]);
  const grouped = new Set([...groups.api, ...groups.workers, ...known, process.pid]);
  const ticks = {
    api: sum(groups.api),
    workers: sum(groups.workers),
    postgresBench: sum(groups.postgresBench),
    postgresBackground: sum(groups.postgresBackground),
    postgresOther: sum(byComm('postgres', known)),
    redis: sum(byComm('redis-server', new Set())),
    loadGenerator: sum([process.pid]),
  };
  const machineBusy = end.machineBusyTicks - start.machineBusyTicks;
  const kernelIrq = end.machineIrqTicks - start.machineIrqTicks;
  const accounted = Object.values(ticks).reduce((total, value) => total + value, 0) + kernelIrq;
  const seconds = (value: number) => value / clockTicks;
  return {
    wallSeconds: (end.at - start.at) / 1000,
    api: seconds(ticks.api),
    workers: seconds(ticks.workers),
    postgresBench: seconds(ticks.postgresBench),
    postgresBackground: seconds(ticks.postgresBackground),
    postgresOther: seconds(ticks.postgresOther),
    redis: seconds(ticks.redis),
    loadGenerator: seconds(ticks.loadGenerator),
    kernelIrq: seconds(kernelIrq),
    everythingElse: seconds(Math.max(0, machineBusy - accounted)),
    machineBusy: seconds(machineBusy),
    topOtherProcesses: [...end.processes]
      .filter(([pid, info]) => !grouped.has(pid) && info.comm !== 'postgres' && info.comm !== 'redis-server')
      .map(([pid, info]) => ({ comm: info.comm, pid, seconds: seconds(delta(pid)) }))
      .filter((entry) => entry.seconds > 0)
      .sort((a, b) => b.seconds - a.seconds)
      .slice(0, 5),
  };
}

/** "api 85% worker 10% ..." as percent of one core over the window. */
export function formatCpu(usage: CpuUsage): string {
  if (usage.wallSeconds < 0.5) return 'window too short to measure';
  const pct = (value: number) => `${Math.round((100 * value) / Math.max(usage.wallSeconds, 1e-9))}%`;
  return [
    `api ${pct(usage.api)}`,
    `worker(s) ${pct(usage.workers)}`,
    `postgres(bench db) ${pct(usage.postgresBench)}`,
    `postgres(background) ${pct(usage.postgresBackground)}`,
    `postgres(other dbs) ${pct(usage.postgresOther)}`,
    `redis ${pct(usage.redis)}`,
    `load generator ${pct(usage.loadGenerator)}`,
    `kernel irq ${pct(usage.kernelIrq)}`,
    `everything else ${pct(usage.everythingElse)}${
      usage.topOtherProcesses.length > 0
        ? ` (${usage.topOtherProcesses.map((entry) => `${entry.comm} ${pct(entry.seconds)}`).join(', ')})`
        : ''
    }`,
    `machine ${pct(usage.machineBusy)} of ${100 * availableParallelism()}%`,
  ].join(', ');
}

/** CPU seconds of `pids` between two snapshots (a process born meanwhile counts whole). */
export function cpuSecondsOf(start: CpuSnapshot, end: CpuSnapshot, pids: Iterable<number>): number {
  let ticks = 0;
  for (const pid of pids) {
    const after = end.processes.get(pid);
    if (after) ticks += after.ticks - (start.processes.get(pid)?.ticks ?? 0);
  }
  return ticks / clockTicks;
}
