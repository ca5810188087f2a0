// Every bound in Minkube lives here, with its unit last in its name. Relationships between them are asserted at load.
import { assert } from './assert.js';

export const limits = {
  // Raft core
  raftInflightAppendsMax: 256,
  raftEntriesPerAppendMax: 1024,
  raftAppendBytesMax: 2 * 1024 * 1024, // one full HTTP body (httpBodyBytesDefault) plus its envelope fits in one append
  raftUncommittedBytesMax: 64 * 1024 * 1024,
  raftPendingReadsMax: 4096,
  raftCommittedEntriesPerReadyMax: 4096,
  raftForwardedProposalsMax: 4096,
  // transport
  frameBytesMax: 16 * 1024 * 1024,
  /**
   * The first frame on an accepted peer connection (its hello: two ids and an address, well under 1 KiB): a longer
   * declared length closes the connection at once, so that a caller not yet known to be a manager cannot make this
   * node buffer frameBytesMax per connection (64 connections each sending 15 MiB without a hello: 75 -> 855 MB RSS).
   */
  peerHelloBytesMax: 64 * 1024,
  /** Accepted peer connections that have not said hello yet, at once: strangers cannot pile up sockets. */
  peerHandshakesPendingMax: 64,
  /** Peers learnt from their hellos (not in the configuration this node knows) at once. */
  peerLearnedMax: 16,
  peerSendQueueMessagesMax: 4096,
  peerSendQueueBytesMax: 64 * 1024 * 1024,
  /**
   * Messages queued for a peer while it was unreachable are dropped at reconnection when the first is older than this
   * (as etcd drops what it cannot send): a stepped-down leader's heartbeats must not make a peer follow it.
   */
  peerQueueStaleMs: 1000,
  /**
   * A peer connection that brings nothing for this long is closed and dialed again: a partition that drops packets
   * leaves both ends open, and after it heals TCP would resend only when its backed-off timer fires (tens of seconds).
   */
  peerSilenceMsMax: 5000,
  /** A connection that carried nothing out for this long gets an empty frame, so its peer hears from this node. */
  peerPingIntervalMs: 1000,
  /**
   * Connections the Raft port holds at once, and from one address: a peer needs one (and a knock now and then), so
   * these bound what strangers can open (a TLS handshake is made before anything is known of the caller).
   */
  peerConnectionsMax: 1024,
  peerConnectionsPerAddressMax: 64,
  // manager
  proposalQueueMax: 8192,
  /** Tasks whose submission trace a manager remembers for their assignment and start (the oldest is forgotten first). */
  tracedTasksMax: 10_000,
  requestTimeoutMsDefault: 2000,
  httpBodyBytesDefault: 1024 * 1024,
  /**
   * How long the CLI's TCP connect may take before its request fails as never sent, so that it moves on to the next
   * manager at once. A host that drops packets never refuses: without this, a write timed out "outcome unknown".
   */
  httpConnectTimeoutMsDefault: 1500,
  /**
   * How long the CLI's TLS handshake may take once its TCP connect is made before its request fails as never sent
   * (nothing of a request leaves before its handshake ends), so that it moves on to the next manager: a manager
   * stopped with SIGSTOP still gets its TCP connects completed by the kernel but answers no ClientHello, and without
   * this a write timed out "outcome unknown". A P-256 handshake costs a server about a millisecond of CPU.
   */
  httpHandshakeTimeoutMsDefault: 750,
  /** Header fields node's HTTP/2 server takes in one request (its default, 128, reset a stream before our 431 at 100). */
  http2HeaderPairsMax: 1000,
  /** Open connections one HttpClient keeps to one origin (a leader's assignments to one worker share them). */
  httpClientConnectionsPerOriginMax: 256,
  /**
   * Pools one HttpClient keeps, one per server it expects (worker w1, manager m2, any manager): a connection verified
   * for one never serves a call meant for another. Past it the least recently used pool is closed once it is idle.
   */
  httpClientPoolsMax: 1100,
  /** Addresses a node may ask its certificate to name (POST /v1/join, POST /v1/certs/renew: `addresses`). */
  certAddressesMax: 8,
  // snapshots
  /** A snapshot's bytes (a follower refuses a larger transfer). */
  snapshotBytesMax: 1024 * 1024 * 1024,
  snapshotChunkBytes: 1024 * 1024,
  snapshotChunkTimeoutMs: 15_000,
  /** A partly received snapshot is forgotten after this long without a chunk. */
  snapshotTransferIdleMsMax: 60_000,
  /**
   * A failed snapshot stream to a peer: the first failure is reported to the core at once (it asks again within a
   * heartbeat), each further one after the one backoff, from Min doubling to Max (half its ceiling plus jitter).
   */
  snapshotRetryMsMin: 100,
  snapshotRetryMsMax: 5_000,
  /** Failed streams to one peer are logged at warn at most this often (the first at once, then with a count). */
  snapshotFailureLogIntervalMs: 30_000,
  /** Entries kept after a compaction (at most a quarter of the threshold), so a follower slightly behind gets entries. */
  snapshotRetainEntriesMax: 1000,
  /**
   * `snapshot restore --config`: how long it waits, in all, for the other managers of the config to answer GET /status
   * (asked at once, in parallel) before it takes those that did not as stopped. A refused connect answers at once.
   */
  restoreProbeMsMax: 2000,
  /**
   * A snapshot at least this large is followed by a forced major collection (src/daemon/gc.ts): below it, what the
   * snapshot let go of is left to V8's own collections.
   */
  snapshotCollectBytesMin: 16 * 1024 * 1024,
  // kv
  kvKeyBytesMax: 512,
  kvSessionsMax: 100_000,
  /** Cached results per client session: at least every proposal one manager can have in flight. */
  kvSessionResultsMax: 8192,
  // auth
  /** API tokens the state machine keeps (expired ones are dropped first); past it a new one is refused. */
  apiTokensMax: 10_000,
  /**
   * An expired token (API or join) is dropped from the replicated state this long after its expiry, by the proposing
   * manager's clock (sooner only to make room at the limit): a manager whose clock runs ahead drops no live token.
   */
  expiredTokenDropAfterMs: 24 * 60 * 60 * 1000,
  /** Join tokens the state machine keeps (expired ones are dropped first); past it a new one is refused. */
  joinTokensMax: 1000,
  /** The longest life an API or join token may be given: ten years. */
  tokenTtlSMax: 10 * 365 * 86_400,
  joinTokenTtlSDefault: 86_400,
  // tasks
  taskHistoryMax: 20,
  listLimitDefault: 100,
  listLimitMax: 1000,
  /** Task records one list page looks at when a filter skips most of them (`?name=`, or `?state=` with `?workerId=`): past it the page ends early, with a cursor to go on from. */
  taskListScanMax: 10_000,
  /** Task records the state machine keeps; past it the oldest final task is forgotten, and with none, QUEUE_FULL. */
  tasksRetainedMax: 200_000,
  /** Idempotency-Key -> task id entries kept (oldest forgotten first). */
  idempotencyKeysMax: 100_000,
  idempotencyKeyBytesMax: 256,
  /** Distinct strings a task store's StringPool shares between records (images, reasons, times...); past it, it starts over. */
  internedStringsMax: 10_000,
  /** Registered workers; a registration past it is refused with QUEUE_FULL. */
  workersMax: 1000,
  /**
   * Workers removed (`worker rm`) whose removal time the state machine keeps, so that a certificate of that id issued
   * before it is refused; past it the oldest removal is forgotten (its certificate, unexpired, is accepted again).
   */
  removedWorkersMax: 10_000,
  /** Ids of task records removed (retention) a manager remembers, so their logs answer 410 TASK_LOGS_GONE, not 404. */
  removedTaskIdsMax: 50_000,
  /** Finished task records one retention command (task.remove, one Raft entry) removes. */
  retentionBatchMax: 1000,
  /** Tasks in one batch submission (one Raft entry). */
  taskBatchMax: 1000,
  /** Copies of a spec one `minkube task run --count` submits (in batches of taskBatchMax). */
  taskRunCountMax: 100_000,
  /** Placements in one Raft command (one scheduling pass proposes at most this many). */
  placementBatchMax: 1000,
  /** Task reports (state changes seen by workers) in one Raft command. */
  reportBatchMax: 2000,
  /** Assignments and stops the leader has in flight to workers at once, and queued behind them. */
  assignConcurrencyMax: 64,
  /** Assignments to one worker in one request (POST /v1/tasks/batch on the worker). */
  assignBatchMax: 256,
  assignQueueMax: 100_000,
  /** A task spec's command, env and labels. */
  taskCommandArgsMax: 4096,
  taskMapEntriesMax: 1024,
  /** maxAttempts a spec may ask for. */
  taskAttemptsMax: 1000,
  /** CPU cores one task may reserve, and a worker may offer (task resources, workers[].capacity). */
  resourceCpusMax: 1024,
  /** MiB one task may reserve, and a worker may offer (16 TiB). */
  resourceMemoryMbMax: 16 * 1024 * 1024,
  /** An environment variable's name ([A-Za-z_][A-Za-z0-9_]*). */
  taskEnvNameCharsMax: 256,
  /** A spec's stopTimeoutS: from its stop signal to SIGKILL. */
  taskStopTimeoutSMax: 3600,
  // services
  /** Named ports of one task spec. */
  taskPortsMax: 16,
  /** Services the state machine keeps; past it a new one is refused with QUEUE_FULL. */
  servicesMax: 10_000,
  /** Replicas of one service. */
  serviceReplicasMax: 10_000,
  /** Versions of a service kept for rollback (the current one included). */
  serviceVersionsMax: 10,
  /**
   * Times a manager makes a PATCH without ifVersion again when another change to the service was applied between its
   * reading the service and its proposal (SERVICE_VERSION_MISMATCH); past it the 409 is answered.
   */
  servicePatchAttemptsMax: 5,
  /** Tasks one reconcile command of the leader creates or stops. */
  serviceReconcileBatchMax: 500,
  /** A replica's failure reason as a rollout's message quotes it (a health check's or runtime's text is unbounded). */
  rolloutReasonCharsMax: 200,
  /** A rolling update's delayS between batches and monitorS a batch must stay healthy (the API's and the CLI's bounds). */
  serviceUpdateDelaySMax: 86_400,
  serviceUpdateMonitorSMax: 86_400,
  /** A health check's timing (intervalS, timeoutS, retries, startPeriodS): the API's and the CLI's bounds. */
  healthCheckIntervalSMin: 0.1,
  healthCheckIntervalSMax: 3600,
  healthCheckTimeoutSMin: 0.1,
  healthCheckTimeoutSMax: 3600,
  healthCheckRetriesMax: 100,
  healthCheckStartPeriodSMax: 3600,
  // HTTP servers (managers and workers): a slow or hostile client must not hold a connection or the parser
  /** The whole header block must arrive within this, and fit in this many bytes and headers (past them: 408 / 431). */
  httpHeadersTimeoutMs: 10_000,
  httpHeaderBytesMax: 16 * 1024,
  httpHeadersCountMax: 100,
  /** The whole request, body included, must arrive within this. */
  httpRequestTimeoutMs: 30_000,
  /** How often Node looks for connections past those two timeouts (its default, 30 s, would let them linger). */
  httpTimeoutCheckIntervalMs: 1000,
  /** An idle keep-alive connection is closed after this (longer than the client's pool keeps one idle). */
  httpKeepAliveTimeoutMs: 10_000,
  /**
   * After an early answer (413 before the body, 431 in a long URL), what the client still sends is read and dropped
   * before the connection (HTTP/2: the stream) is closed, so that the close does not reset the answer away: at most
   * this many bytes, for at most this long (a client that reads the answer stops sending and closes before).
   */
  httpLingerBytesMax: 8 * 1024 * 1024,
  httpLingerMs: 3000,
  /**
   * Open connections one server holds, and of them from one client address (an IPv6 /64). Past either, a new
   * connection takes the place of the one idle longest (none in a request; src/api/connections.ts), if idle at least
   * httpEvictableIdleMsMin; it is closed at once only when none is.
   */
  httpConnectionsMax: 1024,
  httpConnectionsPerAddressMax: 512,
  httpEvictableIdleMsMin: 1000,
  /**
   * Descriptors an HTTP server's connections leave to the rest of the process (storage, Raft peers, outgoing
   * connections): a new connection whose descriptor is within this many of RLIMIT_NOFILE counts as one past
   * httpConnectionsMax (src/lib/fds.ts). An eighth of the limit, at least the Min and at most the Max.
   */
  processFdsReservedDivisor: 8,
  processFdsReservedMin: 16,
  processFdsReservedMax: 256,
  /** How often a server looks whether its process can still open a descriptor, and the most often it warns that not. */
  fdCheckIntervalMs: 1000,
  fdWarnIntervalMs: 5000,
  /** HTTP/1.1 requests one connection may have waiting behind the one answered (pipelined); past it, closed. */
  http1PipelinedMax: 32,
  /** A connection's next pipelined request waits while its socket holds more answer bytes than this unread... */
  http1UnreadBytesMax: 1024 * 1024,
  /** ...and the connection is closed if its client leaves them unread this long. */
  http1UnreadWaitMsMax: 30_000,
  /**
   * Answer bytes one server holds written but not yet taken by their clients, over all its connections; past it, the
   * connections of the answers waiting longest (at least httpUnreadAnswerAgeMsMin) are closed (src/api/unread-answers.ts).
   */
  httpUnreadAnswersBytesMax: 64 * 1024 * 1024,
  httpUnreadAnswerAgeMsMin: 1000,
  /**
   * Requests one HTTP/2 connection may have in flight at once (its SETTINGS_MAX_CONCURRENT_STREAMS). At 256, one
   * connection that never read had 256 task pages of 1.1 MB made at once: the leader's event loop stalled past its
   * election timeout. 100 is the least RFC 9113 recommends.
   */
  http2StreamsPerConnectionMax: 100,
  /**
   * Bytes of one HTTP/2 connection's answers written and not yet sent (its client not reading) before the connection
   * is closed, unless they are one answer alone (src/api/unread-answers.ts). http2SessionMemoryMiBMax does not bound
   * them: node counts its HTTP/2 library's buffers there, not the answers queued on each stream.
   */
  http2SessionUnsentBytesMax: 16 * 1024 * 1024,
  /** Memory one HTTP/2 connection's frames and headers may hold before it is refused more streams, in MiB. */
  http2SessionMemoryMiBMax: 16,
  /**
   * The header block an HTTP/2 connection announces it takes (SETTINGS_MAX_HEADER_LIST_SIZE). Node resets a stream
   * past it without an answer once the client has the setting, so it is above httpHeaderBytesMax: a block between the
   * two is answered 431, as over HTTP/1.1.
   */
  http2HeaderListBytesMax: 64 * 1024,
  // container runtimes
  /** One Docker API call (not wait, not pull): a hung daemon must not hang the worker. */
  runtimeCallTimeoutMsDefault: 15_000,
  runtimePullTimeoutMsDefault: 300_000,
  /**
   * While a worker judges its engine unreachable, it pings it this often (one ping at a time, each under the call
   * deadline), so that it says the engine answers again within about this long of it doing so.
   */
  engineProbeIntervalMs: 1000,
  /** The most of an engine failure's message a worker's heartbeat carries as the reason. */
  engineReasonCharsMax: 300,
  /** Answering "is Docker there?" when choosing a runtime at start-up. */
  runtimePingTimeoutMsDefault: 1500,
  /** logs() returns at most this many bytes (the newest). */
  runtimeLogBytesMax: 1024 * 1024,
  runtimeLogTailLinesDefault: 1000,
  /** The most lines a logs route's ?tail= asks for. */
  logTailLinesMax: 100_000,
  /**
   * A task that exited while its stop was asked for is taken to have ended by itself (its own success or failure, not
   * a stop) only when the runtime says it ended at least this long before the ask: a file's time is the kernel's coarse
   * clock (a few ms behind), and a stop's signal can end a process within that.
   */
  stopEndedBeforeMarginMs: 100,
  /** A process task's log file is rotated (one old generation kept) past this size. */
  processLogFileBytesMax: 8 * 1024 * 1024,
  /**
   * A process task's follower holds the unended last line of what it read (shown once it ends, or once the follower
   * has caught up), so that a skip of what no file keeps any more never splices two lines; a line longer than this is
   * let go in pieces.
   */
  processLogFollowHeldLineBytesMax: 1024 * 1024,
  /** The longest a running process task's log goes without a look for rotation (its watch brings looks forward). */
  processLogCheckMsMax: 2000,
  /** The shortest time between two looks at one log: how often a log that grows fast is looked at. */
  processLogCheckMsMin: 20,
  /** The longest a look waits after a change the log's watch reported (a log that grows slowly, a line at a time). */
  processLogCheckAfterChangeMsMax: 250,
  /** How often a worker looks in /proc at the adopted process tasks (started by an earlier instance) it waits on. */
  processAdoptedPollMs: 1000,
  /**
   * A process task that exits non-zero while the disk of its log has less than this free is taken to have failed for
   * lack of space (its writes failed with ENOSPC, which only the task saw): a transient failure, retried with backoff.
   */
  processDiskFreeBytesMin: 1024 * 1024,
  /** Containers inspected at once by list(). */
  runtimeInspectConcurrencyMax: 8,
  // worker agent
  /** Tasks in a worker's local map (running and finished); an assignment past it is refused with QUEUE_FULL. */
  /** Task statuses in one worker heartbeat; more changes go in the following beats. */
  workerHeartbeatTasksMax: 1000,
  workerTasksMax: 1000,
  /** Containers a worker starts at once (Docker gains little past a few in parallel, and a batch must not flood it). */
  workerStartConcurrencyMax: 8,
  /**
   * The longest pause between two failed waits on a task's container (the engine unreachable): the pauses double from
   * the agent's waitRetryMs up to this. An exit meanwhile is not missed: a reconciliation that sees it wakes the wait.
   */
  workerWaitRetryMsMax: 10_000,
  /** The log tail a worker keeps of a finished task after removing its container. */
  workerFinishedLogBytesMax: 64 * 1024,
  /** A finished task stays in the worker's map at least this long after the managers stopped listing it. */
  workerFinishedRetentionMsDefault: 300_000,
  /**
   * Kept output files a worker reads at once at start, and deletes at once when due (one sweep timer): a data
   * directory of many thousands is taken in batches, never all at once.
   */
  workerKeptLogsBatchMax: 64,
  /**
   * Task ids a worker asks about in one assignment fetch (workerAskTasksHeader): containers of its worker id another
   * instance made. More are asked in the fetches after. Each is at most 64 characters, so the header stays under 3 KiB.
   */
  workerAskTasksMax: 32,
  /** Task ids the managers answered are not the cluster's (another cluster's worker of the same name): not asked again. */
  workerForeignTasksMax: 10_000,
  // security
  caLifetimeDaysDefault: 3650,
  nodeCertLifetimeDaysDefault: 90,
  /**
   * Certificates (the CA's too) start this long before they are issued, so a peer whose clock is behind accepts them:
   * with 5 minutes, a CA made on a host 10 minutes ahead kept a whole cluster from forming. As cfssl's default.
   */
  certBackdateMs: 60 * 60_000,
  /** How long ensureLocalPki waits for another process's lock on the cluster directory. */
  pkiLockWaitMsMax: 20_000,
  /** A lock on the cluster directory older than this is taken to be left by a crashed process. */
  pkiLockStaleMs: 60_000,
  /** How often a node asks whether its certificate is due for renewal (due at 2/3 of its lifetime). */
  certRenewCheckIntervalMs: 3_600_000,
  /** A failed renewal is retried after this, doubling up to the max (and never later than the next check). */
  certRenewRetryMsMin: 5_000,
  certRenewRetryMsMax: 60_000,
  sessionTtlSDefault: 900,
  // audit trail
  /** <dataDir>/audit.log is rotated past this size; audit.log.1 .. .auditLogFilesKept are kept, the oldest dropped. */
  auditLogBytesMax: 16 * 1024 * 1024,
  auditLogFilesKept: 3,
  /** Lines waiting for the disk; past it a new line is dropped (counted and logged) rather than queued. */
  auditQueueLinesMax: 10_000,
  /** Ids one line's target names (a batch names the first ones and how many more). */
  auditTargetIdsMax: 16,
  /**
   * Refusals of requests without a valid credential past their address's anonymous bucket are counted over this, and
   * written as one summary line per address (the first of a flood in full): an outsider's flood costs the trail at
   * most two lines per address per interval.
   */
  auditSummaryIntervalMs: 1000,
  /** Addresses counted in one interval; past it the others are counted together, in one line for client '*'. */
  auditSummaryClientsMax: 10_000,
  /** Routes one summary line names with their counts; past it the rest are counted as '(other routes)'. */
  auditSummaryRoutesMax: 8,
  // rate limits (the rates themselves are config: api.rateLimits, api.rateLimitAnonymous)
  /** Token buckets kept for API tokens, one per accessor; past it the least recently used is forgotten. */
  rateLimitTokenBucketsMax: 10_000,
  /** Token buckets kept for client addresses (requests without a principal); past it the least recently used is forgotten. */
  rateLimitAddressBucketsMax: 10_000,
  /** The largest rate and burst the config accepts (a bucket's arithmetic stays exact well past them). */
  rateLimitRequestsPerSMax: 1_000_000,
  rateLimitBurstMax: 10_000_000,
  // the side thread (api/side-thread.ts): the OpenAPI document and explorer, the dashboard's files
  /** Requests waiting on it at once; past it a new one is 429 QUEUE_FULL. */
  sideThreadPendingMax: 64,
  /** A side thread nobody asked anything for this long ends (its memory with it); the next request starts another. */
  sideThreadIdleMs: 60_000,
  /** Its heap's old generation at most (V8's resourceLimits): a fault there ends the thread, not the manager. */
  sideThreadHeapMbMax: 128,
  /** How long one request may wait on it (the thread's start included); past it 503 NOT_READY. */
  sideThreadAnswerMsMax: 30_000,
  // followed task output (GET /v1/tasks/:id/logs?follow=true)
  /** Followed logs one manager relays at once, and one worker serves at once; past it a new one is 429 QUEUE_FULL. */
  logFollowsMax: 64,
  /** A relayed follow whose attempt is over (lost, ended, replaced) is ended this long after, if the worker has not. */
  logFollowDrainMs: 3000,
  /** How often a relaying manager looks at the followed task's record. */
  logFollowCheckIntervalMs: 1000,
  /**
   * A relayed follow that has brought nothing for this long asks the worker whether this manager still reaches it (a
   * tail of no lines): a worker cut off from this manager alone keeps heartbeating to the leader, and its stream would
   * stay open and silent for good.
   */
  logFollowProbeIdleMs: 10_000,
  /** How long such a question may take; two unanswered in a row cut the follow (another manager may reach the worker). */
  logFollowProbeTimeoutMs: 5000,
  // a followed log picked up again after a cut (`service logs -f`): the CLI asks the new stream for a tail and skips
  // what it had shown, found by the last lines it showed
  /** The last lines of a followed attempt remembered to find, in the tail of the stream opened after a cut, where it was cut. */
  logResumeLinesMax: 20,
  /** Their bytes at most (the newest line is always kept). */
  logResumeBytesMax: 64 * 1024,
  /** The lines of the new stream held while looking for that place: the newest this many bytes of them (a tail's). */
  logResumeHeldBytesMax: 2 * 1024 * 1024,
  /** Held until the new stream has been quiet this long (its tail has come), */
  logResumeQuietMs: 300,
  /** or at most this long after its first line. */
  logResumeHoldMsMax: 2000,
  /** Reopening a cut stream: not before this long after the cut, doubled with each failed reopen, */
  logResumeRetryMsMin: 1000,
  /** up to this. */
  logResumeRetryMsMax: 16_000,
  /**
   * How often a long answer (a followed log, an event stream) checks that the token or session that opened it still
   * holds; one revoked, expired or changed is cut within this.
   */
  longAnswerCredentialCheckMs: 1000,
  /**
   * How long a manager that does not know a token may wait to have applied what the cluster has committed (a token
   * just made through another manager) before it answers 401; one it cannot check in that time is 503 NOT_READY.
   */
  tokenCatchUpMsMax: 1000,
  /**
   * A long answer (a followed log, a relayed one, an event stream) whose written bytes wait unsent this long, none of
   * them taken by its reader meanwhile, is cut: a client that stops reading without closing would hold its slot (of
   * logFollowsMax or eventStreamsMax) for good.
   */
  longAnswerStallMsMax: 30_000,
  /** How often a long answer's unsent bytes are looked at for that. */
  longAnswerStallCheckMs: 1000,
  // the dashboard's live feed (GET /v1/events)
  /** Event streams one manager serves at once; past it a new one is answered 429 QUEUE_FULL. */
  eventStreamsMax: 64,
  /** Bytes waiting to be written to one stream's socket; past it that stream is closed (its client reconnects). */
  eventStreamQueueBytesMax: 4 * 1024 * 1024,
  /** How often the feed looks for a change of leader, term or member (and flushes task changes). */
  eventCheckIntervalMs: 200,
  /** A full snapshot at least this often. */
  eventSnapshotIntervalMs: 1000,
  /** One rate sample per period; the history kept covers eventRateSamplesMax of them (5 minutes). */
  eventRateSampleMs: 1000,
  eventRateSamplesMax: 300,
  /** Task changes in one `tasks` event (the newest per task); past it they are counted as dropped. */
  eventTaskChangesMax: 256,
  /** Workers in one snapshot (the first ones by id). */
  eventWorkersMax: 1000,
  /** A member's GET /v1/cluster, asked once per snapshot while a stream is open, must answer within this. */
  eventPeerPollTimeoutMs: 800,
  /** Member origins (scheme://apiAddress) a manager answers CORS requests from: the members now and the latest before. */
  corsOriginsMax: 256,
  // DNS (src/manager/dns)
  /** TCP connections one manager's DNS server holds at once; past it a new one is closed at once. */
  dnsTcpConnectionsMax: 64,
  /** A starting manager's DNS answers SERVFAIL until one ReadIndex barrier went through: each try waits this long... */
  dnsCatchUpBarrierMs: 2000,
  /** ...and a failed one is tried again after this. */
  dnsCatchUpRetryMs: 250,
  /** A TCP connection without a complete query for this long is closed (bytes of an unfinished query do not count). */
  dnsTcpIdleMs: 10_000,
  /**
   * A TCP connection is not read while dnsTcpPauseBytes of its answers wait unsent (its socket's write high-water
   * mark); it is closed when they are not all sent within dnsTcpDrainMs, or when more than dnsTcpUnsentBytesMax wait.
   */
  dnsTcpPauseBytes: 16 * 1024,
  dnsTcpDrainMs: 5000,
  dnsTcpUnsentBytesMax: 64 * 1024,
  /** Pipelined queries one TCP connection has answered before the manager's other work (and connections) get a turn. */
  dnsTcpQueriesPerTurnMax: 64,
  /** A query larger than this (UDP datagram or TCP message) is dropped. */
  dnsQueryBytesMax: 4096,
  // placement and quotas
  /** Labels per worker, constraints per task. */
  workerLabelsMax: 64,
  taskConstraintsMax: 32,
  /** Namespaces with a quota. */
  quotasMax: 10_000,
  /**
   * Pending tasks one placement pass looks at (a task that fits nowhere is passed over, not waited on): the first
   * placementScanHeadMax of the queue, then the rest of placementScanMax going on where the previous pass stopped, so
   * that every pending task is looked at within a bounded number of passes.
   */
  placementScanMax: 20_000,
  placementScanHeadMax: 10_000,
  /**
   * Stored wall times (pending tasks' notBeforeMs, rollouts' next steps) the leader's loops keep a local monotonic due
   * time for (LocalDueTimes); past it the oldest is measured again when next looked at.
   */
  leaderDueTimesMax: 200_000,
} as const;

assert(limits.raftEntriesPerAppendMax >= 1, 'an append carries at least one entry');
assert(limits.raftAppendBytesMax < limits.frameBytesMax, 'an append must fit in one frame');
assert(limits.peerHelloBytesMax < limits.frameBytesMax, 'a hello is bounded tighter than the frames after it');
assert(limits.peerPingIntervalMs * 3 <= limits.peerSilenceMsMax, 'a peer hears from a live node several times before it gives up on it');
assert(limits.httpBodyBytesDefault < limits.raftAppendBytesMax, 'one request body must fit in one append');
assert(limits.kvSessionResultsMax >= limits.proposalQueueMax, 'a session remembers every in-flight proposal of a manager');
assert(limits.joinTokenTtlSDefault <= limits.tokenTtlSMax, 'the default join token life is allowed');
assert(limits.listLimitDefault <= limits.listLimitMax, 'the default page fits under the maximum');
assert(limits.auditLogFilesKept >= 1 && limits.auditLogBytesMax >= 64 * 1024, 'a rotated audit log keeps at least one whole older file');
assert(limits.snapshotRetryMsMin > 0 && limits.snapshotRetryMsMin <= limits.snapshotRetryMsMax, 'the snapshot retry backoff starts above zero and below its ceiling');
assert(limits.snapshotRetryMsMax <= limits.snapshotFailureLogIntervalMs, 'a peer that keeps failing is retried several times between two warnings');
assert(limits.certRenewRetryMsMin <= limits.certRenewRetryMsMax, 'the renewal backoff starts below its ceiling');
assert(limits.certRenewCheckIntervalMs * 24 < (limits.nodeCertLifetimeDaysDefault * 86_400_000) / 3, 'a node checks many times within the last third of its certificate');
assert(limits.pkiLockWaitMsMax < limits.pkiLockStaleMs, 'a live lock holder is never taken for a crashed one by a waiter');
assert(limits.taskRunCountMax <= limits.tasksRetainedMax, 'one `task run --count` fits in the tasks retained');
assert(limits.healthCheckIntervalSMin > 0 && limits.healthCheckTimeoutSMin > 0, 'a health check neither runs back to back nor times out at once');
assert(limits.leaderDueTimesMax >= limits.placementScanMax && limits.leaderDueTimesMax >= limits.servicesMax, 'a placement pass, and every service, keep their due times');
assert(limits.placementScanHeadMax >= limits.placementBatchMax && limits.placementScanHeadMax < limits.placementScanMax, 'a pass looks at a whole batch at the head of the queue and some tasks beyond it');
assert(limits.assignQueueMax >= limits.placementBatchMax, 'one placement batch fits in the assignment queue');
assert(limits.runtimePingTimeoutMsDefault < limits.runtimeCallTimeoutMsDefault, 'a start-up ping is quicker than any call');
assert(limits.processLogCheckMsMin <= limits.processLogCheckAfterChangeMsMax && limits.processLogCheckAfterChangeMsMax <= limits.processLogCheckMsMax, 'a change brings a log\'s next look forward, never later');
assert(limits.workerFinishedLogBytesMax <= limits.runtimeLogBytesMax, 'one logs() answer can fill the tail a worker keeps');
assert(limits.http2SessionUnsentBytesMax <= limits.httpUnreadAnswersBytesMax, "one HTTP/2 connection's unsent answers are closed before they alone fill every connection's budget");
assert(limits.http2HeaderListBytesMax > limits.httpHeaderBytesMax, 'HTTP/2 header blocks over the bound reach the app, which answers 431');
// ApiClient's default request timeout is requestTimeoutMsDefault + 500 ms: a connection that never opens must be known
// unsent (the CLI moves on) before that deadline says a write's outcome is unknown.
assert(limits.httpConnectTimeoutMsDefault + limits.httpHandshakeTimeoutMsDefault < limits.requestTimeoutMsDefault + 500, "the CLI knows a connection that never opened sent nothing before its request's deadline");
assert(limits.httpHeadersTimeoutMs <= limits.httpRequestTimeoutMs, 'Node requires the header timeout to be at most the request timeout');
assert(limits.rateLimitTokenBucketsMax >= limits.apiTokensMax, 'every token the cluster may hold fits in the buckets at once');
assert(limits.eventStreamsMax < limits.httpConnectionsMax, 'event streams leave connections for the API');
assert(limits.httpConnectionsPerAddressMax < limits.httpConnectionsMax, 'one client address cannot take every connection');
assert(limits.httpClientPoolsMax > limits.workersMax + 64, "a leader's pools hold every worker and the managers at once");
assert(limits.httpConnectionsPerAddressMax >= 2 * limits.httpClientConnectionsPerOriginMax, "two nodes' HTTP clients on one host (or a benchmark's 256 connections) fit under the cap of their address");
assert(limits.httpEvictableIdleMsMin < limits.httpHeadersTimeoutMs && limits.httpEvictableIdleMsMin < limits.httpKeepAliveTimeoutMs, 'an idle connection can give its place well before its own timeouts close it');
assert(limits.processFdsReservedMin <= limits.processFdsReservedMax, 'the reserved descriptors have a floor under their ceiling');
assert(limits.fdCheckIntervalMs < limits.fdWarnIntervalMs, 'a warning repeats only after several looks');
assert(limits.logResumeHeldBytesMax >= limits.runtimeLogBytesMax && limits.logResumeBytesMax < limits.logResumeHeldBytesMax, 'a whole tail of a process task is held when a cut stream is picked up again, and the lines looked for fit in it');
assert(limits.logResumeQuietMs < limits.logResumeHoldMsMax && limits.logResumeRetryMsMin <= limits.logResumeRetryMsMax, 'a resumed stream is held at most logResumeHoldMsMax, and its reopen backoff starts below its ceiling');
assert(limits.eventStreamsMax + limits.logFollowsMax < limits.httpConnectionsMax, 'followed logs and event streams leave connections for the API');
assert(limits.dnsTcpDrainMs < limits.dnsTcpIdleMs, 'a connection that reads no answers is closed before an idle one would be');
// The largest answer: 64 SRV records with 255-byte targets (273 bytes each), their 64 addresses, a question, an OPT.
assert(limits.dnsTcpUnsentBytesMax >= limits.dnsTcpPauseBytes + 32 * 1024, 'a connection about to stop being read still takes one largest answer');
assert(limits.eventCheckIntervalMs <= limits.eventSnapshotIntervalMs && limits.eventPeerPollTimeoutMs < limits.eventSnapshotIntervalMs, 'a change is seen before the next snapshot, and a poll ends before the next one');
assert(limits.longAnswerStallCheckMs * 5 <= limits.longAnswerStallMsMax, 'a stalled reader is looked at several times before it is cut');
