// Conversation ids: `dm:<a>:<b>` (usernames sorted) and `group:<gid>`.

export function directId(a: string, b: string): string {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()].sort()
  return `dm:${x}:${y}`
}

export function isGroup(conversation: string): boolean {
  return conversation.startsWith('group:')
}

export function groupIdOf(conversation: string): string {
  return conversation.slice('group:'.length)
}

/** The other user of a direct conversation (or the user themself for a note to self). */
export function peerOf(conversation: string, me: string): string {
  const [, a, b] = conversation.split(':')
  return a === me ? b : a
}
