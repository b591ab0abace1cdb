// Own messages on their way: each has a client message id chosen once, so a
// resend (after a reconnect, a timeout or the person pressing "retry") is
// idempotent: the server answers with the first ack and writes nothing.
//
// Not yet acked messages are kept in storage, so a reload resends them too.

export interface Outgoing {
  clientMsgId: string
  conversation: string
  text: string
  createdAt: number
  /** pending: waiting for an ack (or for a connection); failed: needs "retry". */
  status: 'pending' | 'failed'
  /** When it was last written to a socket; null = not on the current socket. */
  sentAt: number | null
  attempts: number
  error?: string
}

export interface KeyValueStore {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

/** A send without an ack for this long (ms) on an open socket is shown as failed. */
export const ACK_TIMEOUT = 10_000

export function newClientMsgId(): string {
  const bytes = new Uint8Array(12)
  crypto.getRandomValues(bytes)
  return 'w' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

export class Outbox {
  readonly items = new Map<string, Outgoing>()

  constructor(
    private readonly storage: KeyValueStore | null = null,
    private readonly key = 'tidings.outbox',
  ) {}

  add(conversation: string, text: string, now: number, clientMsgId = newClientMsgId()): Outgoing {
    const item: Outgoing = {
      clientMsgId,
      conversation,
      text,
      createdAt: now,
      status: 'pending',
      sentAt: null,
      attempts: 0,
    }
    this.items.set(clientMsgId, item)
    this.save()
    return item
  }

  /** Pending messages not yet written to the current socket, oldest first. */
  due(): Outgoing[] {
    return [...this.items.values()]
      .filter((item) => item.status === 'pending' && item.sentAt === null)
      .sort((a, b) => a.createdAt - b.createdAt)
  }

  sent(clientMsgId: string, now: number): void {
    const item = this.items.get(clientMsgId)
    if (!item) return
    item.sentAt = now
    item.attempts += 1
  }

  /** The ack arrived: the message is the server's now. Returns what was sent. */
  acked(clientMsgId: string): Outgoing | undefined {
    const item = this.items.get(clientMsgId)
    this.items.delete(clientMsgId)
    this.save()
    return item
  }

  failed(clientMsgId: string, error: string): Outgoing | undefined {
    const item = this.items.get(clientMsgId)
    if (!item) return undefined
    item.status = 'failed'
    item.sentAt = null
    item.error = error
    return item
  }

  /** The person pressed retry: send again with the same client message id. */
  retry(clientMsgId: string): Outgoing | undefined {
    const item = this.items.get(clientMsgId)
    if (!item) return undefined
    item.status = 'pending'
    item.sentAt = null
    item.error = undefined
    return item
  }

  /** Messages written to a socket too long ago without an ack. */
  overdue(now: number, timeout = ACK_TIMEOUT): Outgoing[] {
    return [...this.items.values()].filter(
      (item) => item.status === 'pending' && item.sentAt !== null && now - item.sentAt > timeout,
    )
  }

  /** The socket closed: whatever was on it is resent on the next one. */
  disconnected(): void {
    for (const item of this.items.values()) item.sentAt = null
  }

  save(): void {
    if (!this.storage) return
    const kept = [...this.items.values()].map(({ clientMsgId, conversation, text, createdAt }) => ({
      clientMsgId,
      conversation,
      text,
      createdAt,
    }))
    if (kept.length) this.storage.setItem(this.key, JSON.stringify(kept))
    else this.storage.removeItem(this.key)
  }

  /** Messages a previous page left unacked; they are resent as pending. */
  load(): Outgoing[] {
    if (!this.storage) return []
    let saved: Array<Pick<Outgoing, 'clientMsgId' | 'conversation' | 'text' | 'createdAt'>> = []
    try {
      saved = JSON.parse(this.storage.getItem(this.key) ?? '[]')
    } catch {
      saved = []
    }
    return saved.map((s) => {
      const item = this.add(s.conversation, s.text, s.createdAt, s.clientMsgId)
      return item
    })
  }

  clear(): void {
    this.items.clear()
    this.storage?.removeItem(this.key)
  }
}
