// The login session kept in localStorage, so a reload (or another tab) stays
// signed in. Every tab of a browser shares it: they are one device.

import type { KeyValueStore } from './outbox'

export interface Session {
  token: string
  username: string
  device: string
}

const KEY = 'tidings.session'

export function loadSession(storage: KeyValueStore): Session | null {
  try {
    const parsed = JSON.parse(storage.getItem(KEY) ?? 'null')
    if (parsed && typeof parsed.token === 'string' && typeof parsed.username === 'string') {
      return parsed as Session
    }
  } catch {
    // a damaged entry is the same as none
  }
  return null
}

export function saveSession(storage: KeyValueStore, session: Session): void {
  storage.setItem(KEY, JSON.stringify(session))
}

export function clearSession(storage: KeyValueStore): void {
  storage.removeItem(KEY)
}

export const SESSION_KEY = KEY
