import { IdentityError, invalidArgument } from "./errors.js";
import type { AppCredentials } from "./ports.js";

/** The mini-programs this deployment serves. */
export interface AppRegistry {
  /** The app a request names, or the only one when it names none. */
  resolve(appId: string): AppCredentials;
}

export function createAppRegistry(apps: readonly AppCredentials[]): AppRegistry {
  const byId = new Map(apps.map((app) => [app.appId, app]));
  const only = apps.length === 1 ? apps[0] : undefined;
  return {
    resolve(appId) {
      if (appId === "") {
        if (only) return only;
        throw invalidArgument("app_id", "required: this service serves several apps");
      }
      const app = byId.get(appId);
      if (!app) {
        throw new IdentityError("UNKNOWN_APP", "app_id: not an app this service is configured for", {
          field: "app_id",
        });
      }
      return app;
    },
  };
}
