ALTER TABLE "users" ADD COLUMN "merged_into" uuid;--> statement-breakpoint
-- A phone number belongs to one user from now on. GetPhoneNumber used to bind a number to every
-- user who proved it: the oldest such user keeps it, the others lose it, each loss in the audit log.
WITH holders AS (
  SELECT id, phone_number,
         first_value(id) OVER (PARTITION BY phone_number ORDER BY created_at, id) AS keeper
  FROM "users" WHERE phone_number IS NOT NULL
),
unbound AS (
  UPDATE "users" SET phone_number = NULL
  FROM holders WHERE "users".id = holders.id AND holders.id <> holders.keeper
  RETURNING "users".id, holders.keeper
)
INSERT INTO "audit_events" (id, at, type, actor, subject_user_id, details)
SELECT gen_random_uuid(), now(), 'identity.unlinked', 'system', unbound.id,
       jsonb_build_object('kind', 'phone', 'reason', 'migration 0007: the number stays with an older user',
                          'kept_by', unbound.keeper)
FROM unbound;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_phone_number_unique" UNIQUE("phone_number");
