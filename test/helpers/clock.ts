import { type SharedClock, sharedClock } from "../../src/domain/ports.js";

/** A clock the test moves forward; the service (all its threads) reads it for every expiry decision. */
export function movableClock(): SharedClock & { advance(ms: number): void } {
  const clock = sharedClock();
  return {
    ...clock,
    advance(ms: number) {
      clock.offsetMs[0] = (clock.offsetMs[0] as number) + ms;
    },
  };
}
