-- Several nodes on one database: the node that holds a binding's flow
-- and the Route that reaches the flow through that node (empty for a
-- single node, and for bindings reached directly); a kept message is
-- claimed by the node delivering it until `claimed_until` (Unix seconds).
ALTER TABLE bindings ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE bindings ADD COLUMN node_route TEXT NOT NULL DEFAULT '';
ALTER TABLE offline_messages ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
