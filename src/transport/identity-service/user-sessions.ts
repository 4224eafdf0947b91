import { create } from "@bufbuild/protobuf";
import {
  type EndSessionRequest,
  type EndSessionResponse,
  EndSessionResponseSchema,
  type ListSessionsRequest,
  type ListSessionsResponse,
  ListSessionsResponseSchema,
} from "../../gen/identity/v1/identity_pb.js";
import type { UserSessions } from "../../identity/user-sessions.js";
import { toSessionInfo } from "./messages.js";

export const listSessionsRpc =
  (userSessions: UserSessions) =>
  async (req: ListSessionsRequest): Promise<ListSessionsResponse> => {
    const sessions = await userSessions.listSessions(req.accessToken);
    return create(ListSessionsResponseSchema, {
      sessions: sessions.map(toSessionInfo),
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
