import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type EndSessionRequest,
  type EndSessionResponse,
  EndSessionResponseSchema,
  type ListSessionsRequest,
  type ListSessionsResponse,
  ListSessionsResponseSchema,
  SessionInfoSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { UserSessions } from "../../identity/user-sessions.js";

export const listSessionsRpc =
  (userSessions: UserSessions) =>
  async (req: ListSessionsRequest): Promise<ListSessionsResponse> => {
    const sessions = await userSessions.listSessions(req.accessToken);
    return create(ListSessionsResponseSchema, {
      sessions: sessions.map((s) =>
        create(SessionInfoSchema, {
          sessionId: s.id,
          appId: s.appId,
          deviceId: s.client.deviceId,
          clientIp: s.client.ip,
          userAgent: s.client.userAgent,
          createdAt: timestampFromDate(s.createdAt),
          lastRefreshedAt: s.lastRefreshedAt ? timestampFromDate(s.lastRefreshedAt) : undefined,
          current: s.current,
        }),
      ),
    });
  };

export const endSessionRpc =
  (userSessions: UserSessions) =>
  async (req: EndSessionRequest): Promise<EndSessionResponse> => {
    const { sessionsEnded } = await userSessions.endSession({
      accessToken: req.accessToken,
      sessionId: req.sessionId,
      allOthers: req.allOthers,
    });
    return create(EndSessionResponseSchema, { sessionsEnded });
  };
