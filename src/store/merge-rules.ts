/** What MergeUsers does to the two users, the same on every backend. */

/** The survivor keeps its roles and gains the absorbed user's. */
export const mergedRoles = (survivor: readonly string[], absorbed: readonly string[]): string[] =>
  [...new Set([...survivor, ...absorbed])].sort();

/**
 * The absorbed user's columns after the merge: disabled, pointing at the survivor, its unique
 * phone number and unionid released so that the survivor can take them.
 */
export const absorbedUserChanges = (survivorId: string, now: Date, actor: string | null) => ({
  phoneNumber: null,
  unionid: null,
  mergedInto: survivorId,
  disabledAt: now,
  disabledBy: actor,
  disabledReason: `merged into ${survivorId}`,
});
