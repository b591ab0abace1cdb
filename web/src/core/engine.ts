// The client engine: one signed-in user's live state, kept by the delivery
// contract of docs/protocol.md.
//
// - First `ready` of a page: fetch the conversation list (the state up to the
//   inbox head) and take the inbox head as the cursor; events pushed meanwhile
//   wait in a queue and are applied after.
// - Later `ready`s (reconnects): sync from the cursor, in pages, then confirm.
// - Pushed events go through the cursor: duplicates dropped, gaps synced.
// - Own messages go through the outbox: pending until acked, resent with the
//   same client id after a reconnect, failed (with retry) on an error.
//
// The engine mutates `state`, which the app makes reactive; it never touches
// the DOM.

import { Api, ApiError } from './api'
import { Connection, type SocketLike, type Timers } from './connection'
import {
  applyMessage,
  applyRead,
  emptySummary,
  isJoining,
  mergeList,
  type Summaries,
} from './conversations'
import { InboxCursor } from './inbox'
import { isGroup } from './names'
import {
  acknowledge,
  addPending,
  claimPending,
  countUnreadAfter,
  emptyLog,
  merge,
  mergePage,
  setPendingStatus,
  type MessageLog,
} from './messages'
import { Outbox, type KeyValueStore } from './outbox'
import {
  CONTENT_KINDS,
  isMessageEvent,
  isReadEvent,
  type AckFrame,
  type ErrorFrame,
  type InboxEvent,
  type ReadyFrame,
  type ServerFrame,
  type SyncedFrame,
  type WireMessage,
} from './types'

export type LinkStatus = 'connecting' | 'open' | 'closed'

export interface ClientState {
  me: string
  status: LinkStatus
  /** The socket dropped at least once and is not yet back and synced. */
  interrupted: boolean
  retryIn: number | null
  bootstrapped: boolean
  summaries: Summaries
  logs: Record<string, MessageLog>
  active: string | null
  /** conversation -> user -> typing until (ms since epoch) */
  typing: Record<string, Record<string, number>>
  notice: string | null
  loadingOlder: boolean
  /** A message to bring into view (a search hit), until the view has shown it. */
  focus: { conversation: string; seq: number } | null
}

export function createState(me: string): ClientState {
  return {
    me,
    status: 'closed',
    interrupted: false,
    retryIn: null,
    bootstrapped: false,
    summaries: {},
    logs: {},
    active: null,
    typing: {},
    notice: null,
    loadingOlder: false,
    focus: null,
  }
}

export interface EngineDeps {
  api: Api
  wsUrl: string
  token: () => string | null
  openSocket?: (url: string) => SocketLike
  timers?: Timers
  storage?: KeyValueStore | null
  /** Is the person looking at the page (visible and focused)? */
  attentive?: () => boolean
  onAuthLost?: (code: number) => void
}

// History page size: a screenful or two, cheap to render.
export const PAGE = 50
// Opening a search hit loads at most this many older pages (2,500 messages)
// to reach it; an older hit opens at the oldest page loaded.
const JUMP_PAGES = 50
// Sync page size: big enough to catch up quickly, small enough to apply at once.
const SYNC_PAGE = 200
// Someone's "typing…" shows this long (ms) after their last typing frame.
const TYPING_SHOWN = 4_000
// We tell others we are typing at most this often (ms); the server throttles to 2 s.
const TYPING_EVERY = 2_000
// Confirm the cursor at most this often (ms): it is only a hint for the next session.
const CONFIRM_DELAY = 1_000
const REQUEST_TIMEOUT = 15_000

interface Waiting {
  resolve: (frame: ServerFrame) => void
  reject: (error: Error) => void
  timer: unknown
}

export class Engine {
  readonly cursor = new InboxCursor()
  readonly outbox: Outbox
  readonly connection: Connection
  private readonly timers: Timers
  private queue: InboxEvent[] | null = null
  private syncing: Promise<void> | null = null
  private syncAgain = false
  private refs = 0
  private readonly sendRefs = new Map<string, string>()
  private readonly waiting = new Map<string, Waiting>()
  private readonly lastTyping = new Map<string, number>()
  private confirmTimer: unknown = null
  private watchTimer: unknown = null
  private listRefresh: Promise<void> | null = null
  private listAgain = false
  private readonly loadingOlder = new Set<string>()
  private readonly loadingNewest = new Map<string, Promise<void>>()

  constructor(
    readonly state: ClientState,
    private readonly deps: EngineDeps,
  ) {
    this.timers = deps.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      now: () => Date.now(),
    }
    this.outbox = new Outbox(deps.storage ?? null, `tidings.outbox.${state.me}`)
    this.connection = new Connection(
      deps.wsUrl,
      deps.token,
      {
        frame: (frame) => this.onFrame(frame),
        status: (status, detail) => this.onStatus(status, detail?.retryIn),
        authLost: (code) => deps.onAuthLost?.(code),
      },
      deps.openSocket,
      this.timers,
    )
  }

  // -- life cycle -------------------------------------------------------------

  start(): void {
    for (const item of this.outbox.load()) {
      addPending(this.log(item.conversation), item.clientMsgId, this.draft(item.conversation, item.text, item.createdAt))
    }
    this.connection.start()
    this.watch()
  }

  stop(): void {
    this.connection.stop()
    for (const timer of [this.confirmTimer, this.watchTimer]) {
      if (timer !== null) this.timers.clearTimeout(timer)
    }
    this.confirmTimer = this.watchTimer = null
    this.failWaiting()
  }

  // -- frames -------------------------------------------------------------------

  onFrame(frame: ServerFrame): void {
    const waiting = frame.ref !== undefined ? this.waiting.get(String(frame.ref)) : undefined
    if (waiting && frame.op !== 'ack') {
      this.waiting.delete(String(frame.ref))
      this.timers.clearTimeout(waiting.timer)
      if (frame.op === 'error') waiting.reject(new ApiError(0, String(frame.code), String(frame.message)))
      else waiting.resolve(frame)
      return
    }
    switch (frame.op) {
      case 'ready':
        void this.onReady(frame as unknown as ReadyFrame)
        break
      case 'event':
        this.onPushed(frame.event as InboxEvent)
        break
      case 'ack':
        this.onAck(frame as unknown as AckFrame)
        break
      case 'error':
        this.onError(frame as unknown as ErrorFrame)
        break
      case 'typing':
        this.onTyping(String(frame.conversation), String(frame.user))
        break
      case 'group_head':
        void this.catchUpGroup(String(frame.conversation), Number(frame.seq))
        break
      case 'marked':
        this.onRead(String(frame.conversation), Number(frame.seq))
        break
      case 'confirmed':
        this.cursor.confirmedAt(Number(frame.cursor))
        break
      default:
        break // pong, presence: nothing to keep
    }
  }

  private onStatus(status: LinkStatus, retryIn?: number): void {
    if (status === 'closed' && this.state.status !== 'closed' && this.state.bootstrapped) {
      this.state.interrupted = true
    }
    this.state.status = status
    this.state.retryIn = retryIn ?? null
    if (status !== 'open') {
      this.outbox.disconnected()
      this.failWaiting()
    }
  }

  private async onReady(ready: ReadyFrame): Promise<void> {
    try {
      if (!this.state.bootstrapped || ready.inbox_head < this.cursor.last) {
        await this.bootstrap(ready)
      } else {
        await this.resync()
      }
      this.state.interrupted = false
      if (this.state.active) {
        void this.ensureLoaded(this.state.active)
        this.markRead(this.state.active)
      }
      this.flushOutbox()
    } catch {
      // The socket dropped or the list could not be fetched: start over.
      this.connection.restart()
    }
  }

  /** The page's first `ready`: the list is the state up to the inbox head. */
  private async bootstrap(ready: ReadyFrame): Promise<void> {
    this.queue = []
    try {
      const list = await this.deps.api.conversations()
      mergeList(this.state.summaries, list)
      this.cursor.resetTo(ready.inbox_head)
      const queued = this.queue
      this.queue = null
      for (const event of queued) this.onPushed(event)
      this.state.bootstrapped = true
      this.scheduleConfirm()
    } finally {
      this.queue = null
    }
  }

  private onPushed(event: InboxEvent): void {
    if (this.queue) {
      this.queue.push(event)
      return
    }
    if (this.syncing) {
      // A sync is filling the gap; it will bring this event or sync again.
      if (event.inbox_seq === this.cursor.last + 1) this.applyAndAdvance(event)
      else if (event.inbox_seq > this.cursor.last) this.cursor.classify(event.inbox_seq)
      return
    }
    const verdict = this.cursor.classify(event.inbox_seq)
    if (verdict === 'duplicate') return
    if (verdict === 'gap') {
      void this.resync()
      return
    }
    this.applyAndAdvance(event)
  }

  private applyAndAdvance(event: InboxEvent): void {
    this.applyEvent(event)
    this.cursor.advance(event.inbox_seq)
    this.scheduleConfirm()
  }

  /** Sync from the cursor until caught up (docs/protocol.md, delivery contract 4). */
  resync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true
      return this.syncing
    }
    this.syncing = this.syncLoop().finally(() => {
      this.syncing = null
    })
    return this.syncing
  }

  private async syncLoop(): Promise<void> {
    do {
      this.syncAgain = false
      let more = true
      while (more) {
        const reply = (await this.request({ op: 'sync', after: this.cursor.last, limit: SYNC_PAGE })) as unknown as SyncedFrame
        if (reply.reset) {
          await this.reset(reply.cursor)
          more = false
          continue
        }
        for (const event of reply.events) {
          if (event.inbox_seq > this.cursor.last) {
            this.applyEvent(event)
            this.cursor.advance(event.inbox_seq)
          }
        }
        this.cursor.advance(reply.cursor)
        for (const [conversation, seq] of Object.entries(reply.heads ?? {})) {
          void this.catchUpGroup(conversation, seq)
        }
        more = reply.has_more
      }
    } while (this.syncAgain || this.cursor.behind())
    this.scheduleConfirm(0)
  }

  /** The inbox no longer holds our cursor: reload everything from history. */
  private async reset(cursor: number): Promise<void> {
    const list = await this.deps.api.conversations()
    for (const key of Object.keys(this.state.summaries)) delete this.state.summaries[key]
    mergeList(this.state.summaries, list)
    for (const [conversation, log] of Object.entries(this.state.logs)) {
      const fresh = emptyLog(conversation)
      fresh.pending = log.pending
      this.state.logs[conversation] = fresh
    }
    this.cursor.resetTo(cursor)
    if (this.state.active) await this.ensureLoaded(this.state.active)
  }

  // -- inbox events -------------------------------------------------------------

  applyEvent(event: InboxEvent): void {
    if (isMessageEvent(event)) this.applyMessage(event.message)
    else if (isReadEvent(event)) this.onRead(event.conversation, event.seq)
  }

  private applyMessage(message: WireMessage): void {
    const { me, active } = this.state
    const conversation = message.conversation
    const known = conversation in this.state.summaries
    const viewing = active === conversation && this.attentive()
    applyMessage(this.state.summaries, message, me, { viewing })
    const log = this.state.logs[conversation]
    if (log && !(message.from === me && claimPending(log, message))) merge(log, message)
    this.clearTyping(conversation, message.from)
    const unnamed = isGroup(conversation) && !this.state.summaries[conversation].name
    if (!known || unnamed || (message.kind === 'system' && isJoining(message, me))) {
      this.refreshList()
    }
    if (viewing && CONTENT_KINDS.has(message.kind) && message.from !== me) this.markRead(conversation)
  }

  private onRead(conversation: string, seq: number): void {
    const log = this.state.logs[conversation]
    const summary = this.state.summaries[conversation]
    const outcome = applyRead(this.state.summaries, conversation, seq, (after) =>
      log && summary ? countUnreadAfter(log, after, this.state.me, summary.last_seq) : null,
    )
    if (outcome === 'refetch') this.refreshList()
  }

  /**
   * Fetch the list again (a conversation we did not know, an unread count we
   * cannot compute). A request during a fetch runs one more after it, since
   * the one in flight may predate what prompted it.
   */
  refreshList(): Promise<void> {
    if (this.listRefresh) {
      this.listAgain = true
      return this.listRefresh
    }
    this.listRefresh = this.deps.api
      .conversations()
      .then((list) => mergeList(this.state.summaries, list))
      .catch(() => undefined)
      .finally(() => {
        this.listRefresh = null
        if (this.listAgain) {
          this.listAgain = false
          void this.refreshList()
        }
      })
    return this.listRefresh
  }

  // -- read fan-out groups -------------------------------------------------------

  /** A large group reached `head`: pull what we have not seen from its history. */
  async catchUpGroup(conversation: string, head: number): Promise<void> {
    let after = this.state.summaries[conversation]?.last_seq ?? 0
    while (after < head) {
      const page = await this.deps.api.history(conversation, { after, direction: 'forward', limit: 200 })
      if (!page.messages.length) break
      for (const message of page.messages) this.applyMessage(message)
      after = Math.max(after, ...page.messages.map((m) => m.seq))
      if (!page.has_more) break
    }
  }

  // -- sending ------------------------------------------------------------------

  send(conversation: string, text: string): string | null {
    if (!text.trim()) return null
    const now = this.timers.now()
    const item = this.outbox.add(conversation, text, now)
    addPending(this.log(conversation), item.clientMsgId, this.draft(conversation, text, now))
    this.lastTyping.delete(conversation)
    this.flushOutbox()
    return item.clientMsgId
  }

  retry(clientMsgId: string): void {
    const item = this.outbox.retry(clientMsgId)
    if (!item) return
    setPendingStatus(this.log(item.conversation), clientMsgId, 'pending')
    this.flushOutbox()
  }

  /** Write every due message to the socket (when it is open and caught up). */
  flushOutbox(): void {
    if (this.state.status !== 'open' || !this.state.bootstrapped || this.queue) return
    for (const item of this.outbox.due()) {
      const ref = `s${++this.refs}`
      const written = this.connection.send({
        op: 'send',
        ref,
        conversation: item.conversation,
        text: item.text,
        client_msg_id: item.clientMsgId,
      })
      if (!written) return
      this.sendRefs.set(ref, item.clientMsgId)
      this.outbox.sent(item.clientMsgId, this.timers.now())
    }
  }

  private onAck(ack: AckFrame): void {
    if (ack.ref !== undefined) this.sendRefs.delete(String(ack.ref))
    const clientMsgId = ack.client_msg_id
    if (!clientMsgId) return
    const item = this.outbox.acked(clientMsgId)
    const conversation = item?.conversation ?? ack.conversation
    acknowledge(this.log(conversation), clientMsgId, ack)
    if (item) {
      // The pushed copy may be late (or lost until the next sync): the list
      // shows the message now; the event with the same seq is then a duplicate.
      applyMessage(this.state.summaries, { ...this.draft(conversation, item.text, 0), seq: ack.seq, id: ack.id, ts: ack.ts }, this.state.me)
    }
  }

  private onError(error: ErrorFrame): void {
    const clientMsgId = error.ref !== undefined ? this.sendRefs.get(String(error.ref)) : undefined
    if (clientMsgId) {
      this.sendRefs.delete(String(error.ref))
      const item = this.outbox.failed(clientMsgId, error.message)
      if (item) setPendingStatus(this.log(item.conversation), clientMsgId, 'failed', error.message)
      return
    }
    if (error.code !== 'rate_limited') this.state.notice = error.message
  }

  /** Every couple of seconds: sends without an ack on an open socket are shown as failed. */
  private watch(): void {
    this.watchTimer = this.timers.setTimeout(() => {
      for (const item of this.outbox.overdue(this.timers.now())) {
        this.outbox.failed(item.clientMsgId, 'no answer from the server')
        setPendingStatus(this.log(item.conversation), item.clientMsgId, 'failed', 'no answer from the server')
      }
      this.expireTyping()
      this.watch()
    }, 1_000)
  }

  // -- reading ------------------------------------------------------------------

  /** Show a conversation (`name`: a group's name when the caller knows it). */
  async open(conversation: string | null, name?: string): Promise<void> {
    this.state.active = conversation
    if (!conversation) return
    const summary = (this.state.summaries[conversation] ??= emptySummary(conversation, name))
    if (name && !summary.name) summary.name = name
    await this.ensureLoaded(conversation)
    this.markRead(conversation)
  }

  /**
   * Show a conversation at `seq` (a search hit): pages of history are loaded
   * back from the newest until `seq` is in the log (at most `JUMP_PAGES`), so
   * the log stays one unbroken range; the view then scrolls to it.
   */
  async openAt(conversation: string, seq: number): Promise<void> {
    await this.open(conversation)
    const log = this.log(conversation)
    for (let page = 0; page < JUMP_PAGES && (log.oldest ?? 0) > seq; page++) {
      if (!(await this.loadOlder(conversation))) break
    }
    this.state.focus = { conversation, seq }
  }

  /** The newest page of a conversation, fetched once. */
  ensureLoaded(conversation: string): Promise<void> {
    const log = this.log(conversation)
    if (log.loaded) return Promise.resolve()
    const running = this.loadingNewest.get(conversation)
    if (running) return running
    const loading = this.deps.api
      .history(conversation, { limit: PAGE })
      .then((page) => {
        mergePage(this.log(conversation), page.messages, page.has_more)
      })
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status !== 0) this.state.notice = error.message
      })
      .finally(() => this.loadingNewest.delete(conversation))
    this.loadingNewest.set(conversation, loading)
    return loading
  }

  /** One older page (scrolling up). Returns how many messages were added. */
  async loadOlder(conversation: string): Promise<number> {
    const log = this.log(conversation)
    if (!log.loaded || !log.hasMoreBefore || this.loadingOlder.has(conversation)) return 0
    this.loadingOlder.add(conversation)
    this.state.loadingOlder = true
    try {
      const page = await this.deps.api.history(conversation, { before: log.oldest ?? undefined, limit: PAGE })
      return mergePage(this.log(conversation), page.messages, page.has_more)
    } finally {
      this.loadingOlder.delete(conversation)
      this.state.loadingOlder = this.loadingOlder.size > 0
    }
  }

  /** Mark everything in the conversation read (when the person is looking at it). */
  markRead(conversation: string): void {
    const summary = this.state.summaries[conversation]
    if (!summary || !this.attentive()) return
    if (summary.unread === 0 && summary.read_seq >= summary.last_seq) return
    const sent = this.connection.send({ op: 'read', conversation, seq: summary.last_seq })
    if (sent) {
      summary.read_seq = summary.last_seq
      summary.unread = 0
    }
  }

  // -- changing messages ----------------------------------------------------------

  async recall(conversation: string, seq: number): Promise<void> {
    await this.deps.api.recall(conversation, seq)
  }

  async edit(conversation: string, seq: number, text: string): Promise<void> {
    await this.deps.api.edit(conversation, seq, text)
  }

  // -- typing -------------------------------------------------------------------

  typing(conversation: string): void {
    const now = this.timers.now()
    if (now - (this.lastTyping.get(conversation) ?? 0) < TYPING_EVERY) return
    if (this.connection.send({ op: 'typing', conversation })) this.lastTyping.set(conversation, now)
  }

  private onTyping(conversation: string, user: string): void {
    if (user === this.state.me) return
    const who = (this.state.typing[conversation] ??= {})
    who[user] = this.timers.now() + TYPING_SHOWN
  }

  private clearTyping(conversation: string, user: string): void {
    const who = this.state.typing[conversation]
    if (who && user in who) delete who[user]
  }

  private expireTyping(): void {
    const now = this.timers.now()
    for (const who of Object.values(this.state.typing)) {
      for (const [user, until] of Object.entries(who)) if (until <= now) delete who[user]
    }
  }

  typingIn(conversation: string): string[] {
    const now = this.timers.now()
    return Object.entries(this.state.typing[conversation] ?? {})
      .filter(([, until]) => until > now)
      .map(([user]) => user)
  }

  // -- plumbing -------------------------------------------------------------------

  log(conversation: string): MessageLog {
    return (this.state.logs[conversation] ??= emptyLog(conversation))
  }

  private draft(conversation: string, text: string, now: number): WireMessage {
    return { conversation, seq: 0, id: '', from: this.state.me, ts: now / 1000, kind: 'text', text }
  }

  private attentive(): boolean {
    return this.deps.attentive ? this.deps.attentive() : true
  }

  private request(frame: Record<string, unknown>): Promise<ServerFrame> {
    const ref = `r${++this.refs}`
    return new Promise((resolve, reject) => {
      if (!this.connection.send({ ...frame, ref })) {
        reject(new ApiError(0, 'network', 'not connected'))
        return
      }
      const timer = this.timers.setTimeout(() => {
        this.waiting.delete(ref)
        reject(new ApiError(0, 'timeout', 'no reply'))
      }, REQUEST_TIMEOUT)
      this.waiting.set(ref, { resolve, reject, timer })
    })
  }

  private failWaiting(): void {
    for (const waiting of this.waiting.values()) {
      this.timers.clearTimeout(waiting.timer)
      waiting.reject(new ApiError(0, 'network', 'disconnected'))
    }
    this.waiting.clear()
  }

  private scheduleConfirm(delay = CONFIRM_DELAY): void {
    if (this.confirmTimer !== null) return
    this.confirmTimer = this.timers.setTimeout(() => {
      this.confirmTimer = null
      const cursor = this.cursor.toConfirm()
      if (cursor !== null) this.connection.send({ op: 'confirm', cursor })
    }, delay)
  }
}
