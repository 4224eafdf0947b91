import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./service.js";

/**
 * A PostgreSQL cluster of the fault suite's own, on a spare port and in a temporary directory,
 * so that stopping and locking it never touches the machine's shared server (its Redis is
 * test/helpers/redis-server.ts's). Needs PostgreSQL's server binaries (initdb, pg_ctl).
 */

function postgresBinDir(): string {
  const fromPath = ["initdb", "pg_ctl"].every((tool) => {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
  if (fromPath) return "";
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => join(root, v, "bin")).find((dir) => existsSync(join(dir, "initdb")));
  if (!found) throw new Error("PostgreSQL's server binaries (initdb, pg_ctl) are not installed");
  return found;
}

/** initdb refuses to run as root: as root, the cluster belongs to the `postgres` user. */
function asClusterOwner(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
}

export interface OwnPostgres {
  url: string;
  database(name: string): string;
  /** `pg_ctl stop -m fast`: connections are closed, the server is gone until start(). */
  stop(): void;
  start(): void;
  /** Stops it for good and deletes its directory. */
  destroy(): void;
}

/** `settings`: more server settings (`-c name=value`), as a production server would have them. */
export async function startOwnPostgres(settings: Record<string, string> = {}): Promise<OwnPostgres> {
  const bin = postgresBinDir();
  const tool = (name: string) => (bin ? join(bin, name) : name);
  const dir = mkdtempSync(join(tmpdir(), "identity-chaos-pg-"));
  chmodSync(dir, 0o777);
  const data = join(dir, "data");
  const port = await freePort();
  const run = (name: string, args: string[]) => {
    const [command, full] = asClusterOwner(tool(name), args);
    execFileSync(command, full, { stdio: "ignore" });
  };
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync"]);
  const start = () =>
    run("pg_ctl", [
      "-D",
      data,
      "-l",
      join(dir, "server.log"),
      "-w",
      "-o",
      [
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
        ...Object.entries(settings).map(([name, value]) => `-c ${name}=${value}`),
      ].join(" "),
      "start",
    ]);
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    /** The URL of another database on this server. */
    database: (name: string) => `postgres://postgres@127.0.0.1:${port}/${name}`,
    stop: () => run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]),
    start,
    destroy() {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
