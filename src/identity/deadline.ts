/** Kept back from a caller's deadline for what follows the work: storing, signing, answering. */
const ANSWER_MS = 50;

/** What is left of the caller's deadline (ms since the epoch) for the work itself; none: undefined. */
export const timeLeftForWork = (deadlineAt: number | undefined): number | undefined =>
  deadlineAt === undefined ? undefined : deadlineAt - Date.now() - ANSWER_MS;
