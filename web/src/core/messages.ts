// One conversation's messages as the chat view shows them: committed entries
// ordered by seq (deduplicated by seq), then own messages still pending, in the
// order they were written.
//
// Recall and edit entries are not shown: they change their target. History
// pages, pushes and sync replies can bring the same entry several times and in
// any order; merging is idempotent.

import { CONTENT_KINDS, type WireMessage } from './types'

export type Status = 'sent' | 'pending' | 'failed'

export interface ChatItem {
  /** Stable key for rendering: `s<seq>` once committed, `c<client id>` before. */
  key: string
  seq: number | null
  clientMsgId?: string
  status: Status
  error?: string
  message: WireMessage
}

export interface MessageLog {
  conversation: string
  /** Committed items, ascending by seq. */
  items: ChatItem[]
  /** Own messages not yet acked, oldest first. */
  pending: ChatItem[]
  /** Lowest seq fetched (any kind), the `before` of the next older page. */
  oldest: number | null
  /** Highest seq merged (any kind). */
  newest: number
  /** The newest page has been fetched once. */
  loaded: boolean
  hasMoreBefore: boolean
}

export function emptyLog(conversation: string): MessageLog {
  return {
    conversation,
    items: [],
    pending: [],
    oldest: null,
    newest: 0,
    loaded: false,
    hasMoreBefore: true,
  }
}

/** Index of the item with `seq`, or the insertion point as `-(index + 1)`. */
export function search(items: ChatItem[], seq: number): number {
  let low = 0
  let high = items.length - 1
  while (low <= high) {
    const mid = (low + high) >> 1
    const found = items[mid].seq as number
    if (found === seq) return mid
    if (found < seq) low = mid + 1
    else high = mid - 1
  }
  return -(low + 1)
}

export function find(log: MessageLog, seq: number): ChatItem | undefined {
  const index = search(log.items, seq)
  return index >= 0 ? log.items[index] : undefined
}

export type MergeResult = 'added' | 'updated' | 'duplicate' | 'applied'

/** Merge one history entry (from a page, a push or a sync). */
export function merge(log: MessageLog, message: WireMessage): MergeResult {
  log.oldest = log.oldest === null ? message.seq : Math.min(log.oldest, message.seq)
  log.newest = Math.max(log.newest, message.seq)
  if (message.kind === 'recall' || message.kind === 'edit') {
    applyChange(log, message)
    return 'applied'
  }
  const index = search(log.items, message.seq)
  if (index >= 0) {
    const current = log.items[index]
    const next = newer(current.message, message)
    if (next === current.message) return 'duplicate'
    current.message = next
    return 'updated'
  }
  log.items.splice(-(index + 1), 0, {
    key: `s${message.seq}`,
    seq: message.seq,
    status: 'sent',
    message,
  })
  return 'added'
}

/** Of two copies of one entry, the one that reflects more changes. */
function newer(current: WireMessage, incoming: WireMessage): WireMessage {
  if (current.recalled) return current
  if (incoming.recalled) return incoming
  if ((incoming.edited_at ?? 0) > (current.edited_at ?? 0)) return incoming
  return current
}

function applyChange(log: MessageLog, change: WireMessage): void {
  if (change.target === undefined) return
  const target = find(log, change.target)
  if (!target) return // not loaded: its page will show the current state
  if (change.kind === 'recall') {
    target.message = { ...target.message, recalled: true, text: '', data: null }
  } else if (!target.message.recalled && (target.message.edited_at ?? 0) <= change.ts) {
    target.message = { ...target.message, text: change.text ?? '', edited_at: change.ts }
  }
}

/** Merge an older page (any order); `hasMore` is the server's answer. */
export function mergePage(log: MessageLog, messages: WireMessage[], hasMore: boolean): number {
  let added = 0
  // Oldest first, so that a recall or edit in the page finds its target.
  const ascending = [...messages].sort((a, b) => a.seq - b.seq)
  for (const message of ascending) if (merge(log, message) === 'added') added += 1
  log.hasMoreBefore = hasMore
  log.loaded = true
  return added
}

export function addPending(log: MessageLog, clientMsgId: string, message: WireMessage): ChatItem {
  const item: ChatItem = {
    key: `c${clientMsgId}`,
    seq: null,
    clientMsgId,
    status: 'pending',
    message,
  }
  log.pending.push(item)
  return item
}

/**
 * The send was committed at `seq`. The pending item becomes a committed one;
 * if the pushed copy arrived first, the pending item simply goes away.
 */
export function acknowledge(
  log: MessageLog,
  clientMsgId: string,
  ack: { seq: number; id: string; ts: number },
): void {
  const index = log.pending.findIndex((item) => item.clientMsgId === clientMsgId)
  if (index < 0) return
  const [item] = log.pending.splice(index, 1)
  const existing = find(log, ack.seq)
  if (existing) {
    existing.clientMsgId = clientMsgId
    return
  }
  const message = { ...item.message, seq: ack.seq, id: ack.id, ts: ack.ts }
  merge(log, message)
  const placed = find(log, ack.seq)
  if (placed) placed.clientMsgId = clientMsgId
}

/**
 * A live copy of one's own message (pushed, or from a sync) may arrive before
 * its ack. It then takes the place of the oldest pending item with the same
 * text, so the message never shows twice; the ack that follows finds its
 * seq already there. Returns the client id of the item it replaced.
 */
export function claimPending(log: MessageLog, message: WireMessage): string | undefined {
  if (!CONTENT_KINDS.has(message.kind) || find(log, message.seq)) return undefined
  const index = log.pending.findIndex(
    (item) =>
      item.status === 'pending' &&
      item.message.from === message.from &&
      (item.message.text ?? '') === (message.text ?? ''),
  )
  if (index < 0) return undefined
  const [item] = log.pending.splice(index, 1)
  merge(log, message)
  const placed = find(log, message.seq)
  if (placed) placed.clientMsgId = item.clientMsgId
  return item.clientMsgId
}

export function setPendingStatus(
  log: MessageLog,
  clientMsgId: string,
  status: Status,
  error?: string,
): void {
  const item = log.pending.find((candidate) => candidate.clientMsgId === clientMsgId)
  if (!item) return
  item.status = status
  item.error = error
}

/** What the view renders: committed items then pending ones. */
export function visible(log: MessageLog): ChatItem[] {
  return log.pending.length ? [...log.items, ...log.pending] : log.items
}

/**
 * Messages others sent after `seq` (the server's unread rule), when every entry
 * from `seq + 1` to `lastSeq` is loaded; otherwise null.
 */
export function countUnreadAfter(
  log: MessageLog,
  seq: number,
  me: string,
  lastSeq: number,
): number | null {
  if (!log.loaded || log.oldest === null || log.oldest > seq + 1 || log.newest < lastSeq) return null
  let count = 0
  for (const item of log.items) {
    if (item.seq === null || item.seq <= seq) continue
    if (CONTENT_KINDS.has(item.message.kind) && item.message.from !== me) count += 1
  }
  return count
}
