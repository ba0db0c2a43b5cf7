-- min_version: 23.8
-- requires: rbac
-- SQL roles for servers with access management (the users-file profiles in
-- testenv/clickhouse/users.xml play this part on 18.16). Grant them to
-- users with `GRANT agentaudit_writer TO <user>`.
CREATE ROLE IF NOT EXISTS agentaudit_writer;
CREATE ROLE IF NOT EXISTS agentaudit_compliance;
-- The ingester migrates at start-up and drops expired partitions.
GRANT SELECT, INSERT, CREATE TABLE, CREATE VIEW, ALTER TABLE, ALTER VIEW ON {db}.* TO agentaudit_writer;
GRANT SELECT ON {db}.* TO agentaudit_compliance;
