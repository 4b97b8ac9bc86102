-- One active context per name across every server of a store: two servers (or two requests racing
-- through a load balancer) starting the same name both passed the per-process check; the second
-- insert now fails, answered "context <name> exists".
CREATE UNIQUE INDEX contexts_active_name ON contexts (name)
    WHERE state IN ('STARTED', 'RUNNING', 'STOPPING', 'RESTARTING');
