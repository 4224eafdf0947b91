/**
 * Permissions are strings like "order:read:all", granted through roles (the roles table). A
 * granted permission ending in "*" covers every permission that starts with what precedes it:
 * "order:*" covers "order:read:all", "*" covers everything. The service's AdminService and the
 * verifier client both decide with hasPermission, so they cannot disagree.
 */

/** What an access token needs to call AdminService. */
export const ADMIN_PERMISSION = "identity:admin";

export function hasPermission(granted: readonly string[], wanted: string): boolean {
  for (const permission of granted) {
    if (permission === wanted) return true;
    if (permission.endsWith("*") && wanted.startsWith(permission.slice(0, -1))) return true;
  }
  return false;
}
