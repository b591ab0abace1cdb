// Test doubles for the engine: a scripted socket, a manual clock, a fake API.

import { Api } from '../src/core/api'
import type { SocketLike, Timers } from '../src/core/connection'
import type { ConversationSummary, WireMessage } from '../src/core/types'

export class FakeSocket implements SocketLike {
  readyState = 0
  sent: Array<Record<string, unknown>> = []
  closedWith: number | null = null
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number; reason?: string }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null

  constructor(readonly url: string) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data))
  }

  close(code = 1000): void {
    this.closedWith = code
    this.readyState = 3
  }

  // -- driven by the test --
  open(): void {
    this.readyState = 1
    this.onopen?.({})
  }

  deliver(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }

  drop(code = 1006): void {
    this.readyState = 3
    this.onclose?.({ code })
  }

  ops(op: string): Array<Record<string, unknown>> {
    return this.sent.filter((frame) => frame.op === op)
  }

  last(op: string): Record<string, unknown> {
    const found = this.ops(op)
    return found[found.length - 1]
  }
}

export class ManualTimers implements Timers {
  time = 1_000_000
  private next = 1
  private readonly due = new Map<number, { at: number; fn: () => void }>()

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++
    this.due.set(id, { at: this.time + ms, fn })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.due.delete(handle as number)
  }

  now(): number {
    return this.time
  }

  advance(ms: number): void {
    const end = this.time + ms
    for (;;) {
      const ready = [...this.due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)
      if (!ready.length) break
      const [id, timer] = ready[0]
      this.due.delete(id)
      this.time = Math.max(this.time, timer.at)
      timer.fn()
    }
    this.time = end
  }
}

export class MemoryStorage {
  readonly data = new Map<string, string>()
  getItem(key: string): string | null {
    return this.data.get(key) ?? null
  }
  setItem(key: string, value: string): void {
    this.data.set(key, value)
  }
  removeItem(key: string): void {
    this.data.delete(key)
  }
}

export function message(conversation: string, seq: number, from: string, text = `m${seq}`, extra: Partial<WireMessage> = {}): WireMessage {
  return { conversation, seq, id: `id${seq}`, from, ts: 1_000 + seq, kind: 'text', text, ...extra }
}

export function summary(conversation: string, fields: Partial<ConversationSummary> = {}): ConversationSummary {
  return {
    conversation,
    type: conversation.startsWith('group:') ? 'group' : 'direct',
    name: null,
    last_seq: 0,
    read_seq: 0,
    unread: 0,
    last_message: null,
    last_ts: null,
    ...fields,
  }
}

/** An Api whose answers the test sets. */
export class FakeApi extends Api {
  list: ConversationSummary[] = []
  histories: Record<string, WireMessage[]> = {}
  calls: string[] = []

  constructor() {
    super('', () => Promise.reject(new Error('no network in tests')))
  }

  override async conversations(): Promise<ConversationSummary[]> {
    this.calls.push('conversations')
    return structuredClone(this.list)
  }

  override async history(
    conversation: string,
    options: { before?: number; after?: number; limit?: number; direction?: 'forward' | 'backward' } = {},
  ): Promise<{ messages: WireMessage[]; has_more: boolean }> {
    this.calls.push(`history ${conversation} ${JSON.stringify(options)}`)
    const all = this.histories[conversation] ?? []
    const limit = options.limit ?? 50
    if (options.direction === 'forward') {
      const after = all.filter((m) => m.seq > (options.after ?? 0))
      return { messages: after.slice(0, limit), has_more: after.length > limit }
    }
    const before = all.filter((m) => m.seq < (options.before ?? Infinity)).reverse()
    return { messages: before.slice(0, limit), has_more: before.length > limit }
  }
}

/** Let pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}
