// The conversation list: summaries, unread counts, ordering by last activity.
//
// Unread = messages after the read mark that others sent (text and data
// kinds), the server's rule. A message is counted once: an event whose seq is
// at or below the summary's `last_seq` was already counted (by the list the
// server sent, or by an earlier event), so replays after a reconnect or a
// second tab's sync never count twice.

import { CONTENT_KINDS, type ConversationSummary, type WireMessage } from './types'
import { isGroup } from './names'

/** The server counts unread exactly up to this many. */
export const UNREAD_CAP = 999

export type Summaries = Record<string, ConversationSummary>

export function emptySummary(conversation: string, name?: string | null): ConversationSummary {
  return {
    conversation,
    type: isGroup(conversation) ? 'group' : 'direct',
    name: name ?? null,
    last_seq: 0,
    read_seq: 0,
    unread: 0,
    last_message: null,
    last_ts: null,
  }
}

/**
 * Take the server's list. A local summary that is ahead of the server's (an
 * event arrived while the list was in flight) is kept.
 */
export function mergeList(summaries: Summaries, list: ConversationSummary[]): void {
  for (const incoming of list) {
    const local = summaries[incoming.conversation]
    if (!local || incoming.last_seq >= local.last_seq) {
      summaries[incoming.conversation] = {
        ...incoming,
        name: incoming.name ?? local?.name ?? null,
        read_seq: Math.max(incoming.read_seq, local?.read_seq ?? 0),
        unread: local && local.read_seq > incoming.read_seq ? 0 : incoming.unread,
      }
    }
  }
}

/** Does this entry change what the list shows as the last message? */
function previewable(message: WireMessage): boolean {
  return CONTENT_KINDS.has(message.kind) || message.kind === 'system'
}

/**
 * Apply one message to the list.
 *
 * Returns true when the message was new to the list (its seq was beyond the
 * summary's last seq).
 */
export function applyMessage(
  summaries: Summaries,
  message: WireMessage,
  me: string,
  options: { viewing?: boolean } = {},
): boolean {
  const summary = (summaries[message.conversation] ??= emptySummary(message.conversation))
  if (message.seq <= summary.last_seq) {
    // Already counted, but a recall or an edit may change the preview.
    refreshPreview(summary, message)
    return false
  }
  summary.last_seq = message.seq
  summary.last_ts = Math.max(summary.last_ts ?? 0, message.ts)
  if (previewable(message)) summary.last_message = message
  else refreshPreview(summary, message)
  const countable = CONTENT_KINDS.has(message.kind) && message.from !== me
  if (message.from === me && CONTENT_KINDS.has(message.kind)) {
    // Sending implies having read everything before it.
    summary.read_seq = Math.max(summary.read_seq, message.seq - 1)
  }
  // While the person looks at the conversation nothing becomes unread; the
  // engine sends the read mark, whose event moves `read_seq` on every device.
  if (countable && message.seq > summary.read_seq && !options.viewing) {
    summary.unread = Math.min(UNREAD_CAP, summary.unread + 1)
  }
  if (message.kind === 'system' && isLeaving(message, me)) summary.left = true
  if (message.kind === 'system' && isJoining(message, me)) summary.left = false
  return true
}

function refreshPreview(summary: ConversationSummary, message: WireMessage): void {
  const last = summary.last_message
  if (!last || message.target !== last.seq) return
  if (message.kind === 'recall') summary.last_message = { ...last, recalled: true, text: '' }
  if (message.kind === 'edit') summary.last_message = { ...last, text: message.text ?? '' }
}

export function isLeaving(message: WireMessage, me: string): boolean {
  return (message.event === 'left' || message.event === 'removed') && message.user === me
}

export function isJoining(message: WireMessage, me: string): boolean {
  return (
    ['created', 'added', 'joined'].includes(message.event ?? '') &&
    (message.users ?? []).includes(me)
  )
}

/**
 * Apply a read mark (ours, from any device).
 *
 * `countAfter` counts the unread messages after the mark when the caller has
 * them loaded; when it cannot (returns null), the result says the list should
 * be fetched again for an exact count.
 */
export function applyRead(
  summaries: Summaries,
  conversation: string,
  seq: number,
  countAfter?: (seq: number) => number | null,
): 'changed' | 'unchanged' | 'refetch' {
  const summary = summaries[conversation]
  if (!summary || seq <= summary.read_seq) return 'unchanged'
  summary.read_seq = seq
  if (seq >= summary.last_seq) {
    summary.unread = 0
    return 'changed'
  }
  const counted = countAfter ? countAfter(seq) : null
  if (counted === null) return 'refetch'
  summary.unread = Math.min(UNREAD_CAP, counted)
  return 'changed'
}

/** Most recently active first; conversations without activity last. */
export function ordered(summaries: Summaries): ConversationSummary[] {
  return Object.values(summaries)
    .filter((s) => !s.left)
    .sort((a, b) => (b.last_ts ?? 0) - (a.last_ts ?? 0) || a.conversation.localeCompare(b.conversation))
}

export function totalUnread(summaries: Summaries): number {
  return ordered(summaries).reduce((sum, s) => sum + s.unread, 0)
}
