// Wire types: the shapes docs/protocol.md describes.

export type MessageKind = 'text' | 'data' | 'system' | 'recall' | 'edit'

/** One entry of a conversation's history, as the server sends it. */
export interface WireMessage {
  conversation: string
  seq: number
  id: string
  from: string
  ts: number
  kind: MessageKind | string
  text?: string | null
  data?: Record<string, unknown> | null
  mentions?: string[] | null
  recalled?: boolean
  edited_at?: number
  // system entries
  event?: string
  users?: string[]
  user?: string
  by?: string
  role?: string
  changes?: Record<string, unknown>
  // recall / edit entries
  target?: number
}

export interface MessageEvent {
  inbox_seq: number
  type: 'message'
  message: WireMessage
}

export interface ReadEvent {
  inbox_seq: number
  type: 'read'
  conversation: string
  seq: number
}

export interface OtherEvent {
  inbox_seq: number
  type: string
  [field: string]: unknown
}

export type InboxEvent = MessageEvent | ReadEvent | OtherEvent

export interface ConversationSummary {
  conversation: string
  type: 'direct' | 'group'
  name?: string | null
  last_seq: number
  read_seq: number
  unread: number
  last_message: WireMessage | null
  last_ts: number | null
  /** Set locally when we left or were removed from a group. */
  left?: boolean
}

export interface ReadyFrame {
  op: 'ready'
  user: string
  device: string
  cursor: number
  inbox_head: number
  heartbeat: number
}

export interface SyncedFrame {
  op: 'synced'
  ref?: string | number
  events: InboxEvent[]
  cursor: number
  has_more: boolean
  heads: Record<string, number>
  reset: boolean
}

export interface AckFrame {
  op: 'ack'
  ref?: string | number
  client_msg_id?: string | null
  conversation: string
  seq: number
  id: string
  ts: number
  duplicate?: boolean
}

export interface ErrorFrame {
  op: 'error'
  ref?: string | number
  code: string
  message: string
  details?: Record<string, unknown>
}

export type ServerFrame = { op: string; ref?: string | number; [field: string]: unknown }

/** Kinds a person wrote: they count as unread and show as bubbles. */
export const CONTENT_KINDS = new Set(['text', 'data'])

export function isMessageEvent(event: InboxEvent): event is MessageEvent {
  return event.type === 'message'
}

export function isReadEvent(event: InboxEvent): event is ReadEvent {
  return event.type === 'read'
}
