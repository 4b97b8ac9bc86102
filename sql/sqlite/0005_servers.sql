-- The servers sharing this database: the same logical change as sql/postgres/0005_servers.sql.
-- Each server keeps its row fresh (heartbeat_time, epoch milliseconds) while it runs, so that its
-- peers can forward requests about its contexts to it (rest_url) and give its drivers its bus
-- address (bus_endpoint). A server whose heartbeat is older than peers.timeout is dead to the
-- others: one of them adopts its contexts, setting adopted_by in the same transaction that moves
-- the contexts' owner, so that exactly one does. key_fingerprint tells which servers share a key
-- (only those can take over each other's drivers and trust each other's forwarded requests).
CREATE TABLE servers (
    server_id       TEXT   PRIMARY KEY,
    rest_url        TEXT   NOT NULL,
    bus_endpoint    TEXT   NOT NULL,
    key_fingerprint TEXT   NOT NULL,
    heartbeat_time  INTEGER NOT NULL,
    adopted_by      TEXT
);
