/**
 * The one timer of a session (§60.9: "timeouts are per state"): every state change sets
 * it anew; 0 seconds means the state has none. Tests shrink every timeout by `scale`. It
 * never keeps the process alive on its own.
 */
export class SessionTimer {
  private handle: NodeJS.Timeout | undefined;

  constructor(
    private readonly onExpire: () => void,
    private readonly scale = 1,
  ) {}

  set(seconds: number): void {
    this.clear();
    if (seconds <= 0) return;
    this.handle = setTimeout(this.onExpire, seconds * 1000 * this.scale);
    this.handle.unref();
  }

  clear(): void {
    if (this.handle) clearTimeout(this.handle);
    this.handle = undefined;
  }
}
