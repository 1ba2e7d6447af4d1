/** domain: the errors a client can act on (errors.ts) and the field rules every input must pass (validation.ts). */

/** The few ways a request can fail that a client can act on; mapped to HTTP in src/api/problem.ts. */

export class DomainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export interface InvalidField {
  name: string;
  reason: string;
}

export class ValidationError extends DomainError {
  constructor(
    message: string,
    readonly invalidParams: InvalidField[] = [],
  ) {
    super(message);
  }
}

export class NotFoundError extends DomainError {}

/** A create that collides with something that already exists. */
export class ConflictError extends DomainError {}

/** The request is well-formed but the rules say no, e.g. a void past its window; `slug` names the rule. */
export class RuleViolationError extends DomainError {
  constructor(
    message: string,
    readonly slug: string,
  ) {
    super(message);
  }
}
