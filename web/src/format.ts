// How messages read in the list and in the chat (no state, no I/O).

import type { WireMessage } from './core/types'
import { isGroup, peerOf } from './core/names'
import type { ConversationSummary } from './core/types'

export function title(summary: ConversationSummary | undefined, conversation: string, me: string): string {
  if (isGroup(conversation)) return summary?.name || conversation.slice('group:'.length)
  return peerOf(conversation, me)
}

export function systemText(message: WireMessage, me: string): string {
  const who = (name?: string) => (name === me ? 'you' : name ?? 'someone')
  const by = who(message.by ?? message.from)
  const users = (message.users ?? []).map(who).join(', ')
  switch (message.event) {
    case 'created':
      return `${by} created the group`
    case 'added':
      return `${by} added ${users}`
    case 'joined':
      return `${users || by} joined`
    case 'left':
      return `${who(message.user)} left`
    case 'removed':
      return `${by} removed ${who(message.user)}`
    case 'role':
      return `${by} made ${who(message.user)} ${message.role === 'admin' ? 'an admin' : 'a member'}`
    case 'owner':
      return `${who(message.user)} is now the owner`
    case 'updated':
      return `${by} changed the group's details`
    default:
      return `${by}: ${message.event ?? 'update'}`
  }
}

export function preview(message: WireMessage | null, me: string): string {
  if (!message) return ''
  if (message.kind === 'system') return systemText(message, me)
  if (message.recalled) return 'message recalled'
  const text = message.text || (message.kind === 'data' ? '[attachment]' : '')
  const prefix = message.from === me ? 'you: ' : isGroup(message.conversation) ? `${message.from}: ` : ''
  return prefix + text
}

export function clock(ts: number | null | undefined): string {
  if (!ts) return ''
  const date = new Date(ts * 1000)
  const now = new Date()
  const sameDay = date.toDateString() === now.toDateString()
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  return sameDay ? time : `${date.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`
}

export function badge(count: number): string {
  return count > 999 ? '999+' : String(count)
}
