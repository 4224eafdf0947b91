import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Admin, AdminCall, UserWithSessions } from "../../accounts/admin.js";
import type { AuditEvent, UserDetails, UserRecord } from "../../domain/ports.js";
import {
  AdminService,
  AdminUserSchema,
  AuditEventSchema,
  CreateStaffAccountResponseSchema,
  DisableUserResponseSchema,
  EnableUserResponseSchema,
  EndUserSessionsResponseSchema,
  GetUserResponseSchema,
  ListAuditEventsResponseSchema,
  ListRolesResponseSchema,
  MergeUsersResponseSchema,
  RoleSchema,
  SearchUsersResponseSchema,
  SetRolePermissionsResponseSchema,
  SetRolesResponseSchema,
  WechatIdentitySchema,
} from "../../gen/identity/v1/admin_pb.js";
import type { Logger } from "../../observability/logger.js";
import { callerAddressKey } from "../caller-address.js";
import { callerNameKey } from "../caller-auth.js";
import { type GuardOptions, guarded } from "../identity-service/guard.js";
import { toSessionInfo } from "../identity-service/messages.js";

export type AdminServiceImpl = ServiceImpl<typeof AdminService>;

/** Results a search or a page holds when the request leaves page_size at 0. */
const DEFAULT_USERS = 20;
const DEFAULT_EVENTS = 100;

const optional = (value: string) => (value === "" ? undefined : value);

function toAdminUser(user: UserRecord, permissions: readonly string[] = []) {
  return create(AdminUserSchema, {
    id: user.id,
    unionid: user.unionid ?? "",
    roles: user.roles,
    permissions: [...permissions],
    phoneNumber: user.phoneNumber ?? "",
    nickname: user.nickname ?? "",
    avatarUrl: user.avatarUrl ?? "",
    createdAt: timestampFromDate(user.createdAt),
    disabledAt: user.disabledAt ? timestampFromDate(user.disabledAt) : undefined,
    disabledBy: user.disabledBy ?? "",
    disabledReason: user.disabledReason ?? "",
    mergedInto: user.mergedInto ?? "",
  });
}

const toDetailedUser = (details: UserDetails) => toAdminUser(details.user, details.permissions);

function toGetUserResponse(details: UserWithSessions) {
  return create(GetUserResponseSchema, {
    user: toDetailedUser(details),
    wechatIdentities: details.wechat.map((w) =>
      create(WechatIdentitySchema, { appId: w.appId, openid: w.openid, unionid: w.unionid ?? "" }),
    ),
    username: details.username ?? "",
    sessions: details.sessions.map((s) => toSessionInfo(s)),
  });
}

function toAuditEvent(event: AuditEvent) {
  return create(AuditEventSchema, {
    id: event.id,
    at: timestampFromDate(event.at),
    type: event.type,
    actor: event.actor,
    userId: event.subjectUserId ?? "",
    clientIp: event.ip,
    userAgent: event.userAgent,
    details: event.details as JsonObject,
  });
}

/** The administrator's token and where the call came from, for the checks and the audit row. */
const adminCall = (req: { accessToken: string }, context: HandlerContext): AdminCall => ({
  accessToken: req.accessToken,
  callerAddress: context.values.get(callerAddressKey) ?? "",
  caller: context.values.get(callerNameKey),
});

/** AdminService, mounted on both ports beside IdentityService, through the same guard. */
export function createAdminServiceImpl(admin: Admin, log: Logger, options: GuardOptions): AdminServiceImpl {
  const m = AdminService.method;
  return {
    searchUsers: guarded(
      log,
      m.searchUsers,
      async (req, context) => {
        const users = await admin.searchUsers(adminCall(req, context), {
          userId: optional(req.userId),
          openid: optional(req.openid),
          unionid: optional(req.unionid),
          phoneNumber: optional(req.phoneNumber),
          username: optional(req.username),
          limit: req.pageSize || DEFAULT_USERS,
        });
        return create(SearchUsersResponseSchema, { users: users.map((u) => toAdminUser(u)) });
      },
      options,
    ),

    getUser: guarded(
      log,
      m.getUser,
      async (req, context) => {
        return toGetUserResponse(await admin.getUser(adminCall(req, context), req.userId));
      },
      options,
    ),

    createStaffAccount: guarded(
      log,
      m.createStaffAccount,
      async (req, context) => {
        const details = await admin.createStaffAccount(adminCall(req, context), {
          username: req.username,
          password: req.password,
          roles: req.roles,
        });
        return create(CreateStaffAccountResponseSchema, { user: toDetailedUser(details) });
      },
      options,
    ),

    setRoles: guarded(
      log,
      m.setRoles,
      async (req, context) => {
        const details = await admin.setRoles(adminCall(req, context), req.userId, req.roles);
        return create(SetRolesResponseSchema, { user: toDetailedUser(details) });
      },
      options,
    ),

    listRoles: guarded(
      log,
      m.listRoles,
      async (req, context) => {
        const roles = await admin.listRoles(adminCall(req, context));
        return create(ListRolesResponseSchema, { roles: roles.map((r) => create(RoleSchema, r)) });
      },
      options,
    ),

    setRolePermissions: guarded(
      log,
      m.setRolePermissions,
      async (req, context) => {
        await admin.setRolePermissions(adminCall(req, context), req.role, req.permissions);
        return create(SetRolePermissionsResponseSchema);
      },
      options,
    ),

    mergeUsers: guarded(
      log,
      m.mergeUsers,
      async (req, context) => {
        const merged = await admin.mergeUsers(adminCall(req, context), {
          survivorId: req.survivorUserId,
          absorbedId: req.absorbedUserId,
          reason: req.reason,
        });
        return create(MergeUsersResponseSchema, {
          user: toGetUserResponse(merged.user),
          sessionsEnded: merged.sessionsEnded,
        });
      },
      options,
    ),

    disableUser: guarded(
      log,
      m.disableUser,
      async (req, context) => {
        const { sessionsEnded } = await admin.disableUser(adminCall(req, context), req.userId, req.reason);
        return create(DisableUserResponseSchema, { sessionsEnded });
      },
      options,
    ),

    enableUser: guarded(
      log,
      m.enableUser,
      async (req, context) => {
        await admin.enableUser(adminCall(req, context), req.userId);
        return create(EnableUserResponseSchema);
      },
      options,
    ),

    endUserSessions: guarded(
      log,
      m.endUserSessions,
      async (req, context) => {
        const { sessionsEnded } = await admin.endUserSessions(
          adminCall(req, context),
          req.userId,
          req.sessionId,
        );
        return create(EndUserSessionsResponseSchema, { sessionsEnded });
      },
      options,
    ),

    listAuditEvents: guarded(
      log,
      m.listAuditEvents,
      async (req, context) => {
        const page = await admin.listAuditEvents(adminCall(req, context), {
          subjectUserId: optional(req.userId),
          type: optional(req.type),
          since: req.since ? timestampDate(req.since) : undefined,
          before: req.before ? timestampDate(req.before) : undefined,
          limit: req.pageSize || DEFAULT_EVENTS,
          pageToken: req.pageToken,
        });
        return create(ListAuditEventsResponseSchema, {
          events: page.events.map(toAuditEvent),
          nextPageToken: page.nextPageToken,
        });
      },
      options,
    ),
  };
}
