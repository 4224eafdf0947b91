import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { startTestApp, type TestApp } from "../helpers/test-app.js";

/** Every PromQL expression of the dashboard and the alert rules, with where it stands. */
function expressions(): Array<{ where: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync("deploy/grafana/dashboards/wechat-identity.json", "utf8")) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  };
  const alerts = parse(readFileSync("deploy/prometheus/alerts.yml", "utf8")) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
  };
  return [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
    ...alerts.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }))),
  ];
}

/** The metric families a running service exports (its /metrics, the gRPC thread's included). */
async function exportedFamilies(url: string): Promise<Map<string, string>> {
  const text = await (await fetch(url)).text();
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
}

describe("the dashboard and the alert rules in deploy/", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("embedded");
  });
  afterAll(() => t.stop());

  it("use only metrics the service exports", async () => {
    const families = await exportedFamilies(`${t.httpUrl}/metrics`);
    const exported = (name: string) => {
      if (families.has(name)) return true;
      const histogram = /^(.+)_(bucket|count|sum)$/.exec(name);
      return histogram !== null && families.get(histogram[1] as string) === "histogram";
    };
    const missing: string[] = [];
    const all = expressions();
    expect(all.length).toBeGreaterThan(20);
    for (const { where, expr } of all) {
      for (const [name] of expr.matchAll(/\b(?:identity|nodejs|process)_[a-z0-9_]+\b/g)) {
        if (!exported(name)) missing.push(`${where}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
