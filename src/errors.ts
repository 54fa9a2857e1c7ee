// The one error type livepatch throws: a stable `code` for programs, a message in the kernel's wording for people.

export type LivepatchErrorCode =
  | 'EINVAL' // bad input: a malformed patch, a bad sysfs value, a bad request
  | 'EBUSY' // another transition is running, or the object is in use
  | 'ENOENT' // no such patch, module, function or symbol
  | 'EEXIST' // a patch of that name is already loaded
  | 'EPERM' // not allowed: signature, ownership, forced patch removal
  | 'ENODEV' // livepatch is not active here (no runtime, no kernel support)
  | 'EHASH' // the target module's content hash differs from the one the patch was built against
  | 'ETIMEDOUT' // a transition did not finish in time
  | 'EVETO' // a pre-patch callback refused
  | 'EINSTRUMENT' // the instrumenter could not process a module
  | 'EPROTO' // a malformed control-protocol frame
  | 'EBUILD'; // the patch builder refused a change

export class LivepatchError extends Error {
  override readonly name = 'LivepatchError';
  readonly code: LivepatchErrorCode;
  /** Extra facts for programs (module id, hashes, line…); shown by the CLI under --json. */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: LivepatchErrorCode,
    message: string,
    details?: Record<string, unknown>,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

export function isLivepatchError(e: unknown): e is LivepatchError {
  return e instanceof Error && e.name === 'LivepatchError' && typeof (e as LivepatchError).code === 'string';
}
