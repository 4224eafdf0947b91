/**
 * Waits until `check` holds, polling; for effects that arrive on their own schedule (a pub/sub
 * message, a reconnect). The limit only bounds a failing test, it asserts no timing.
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
