/**
 * SCIM protocol errors (RFC 7644 §3.12). Everything the SCIM layer rejects is thrown as a ScimError
 * and turned into an `urn:ietf:params:scim:api:messages:2.0:Error` body by the routes and by Bulk,
 * so the same validation code serves single requests and bulk operations alike.
 */
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

export interface ScimErrorBody {
  schemas: [typeof ERROR_SCHEMA];
  status: string;
  scimType?: ScimType;
  detail: string;
}

/** Details quote the input (a name, a path); a 9 MB input must not come back as a 9 MB error. */
const MAX_DETAIL = 1000;

export class ScimError extends Error {
  readonly detail: string;

  constructor(
    readonly status: number,
    readonly scimType: ScimType | undefined,
    detail: string,
  ) {
    const clipped = detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL)}… (${detail.length - MAX_DETAIL} more characters)` : detail;
    super(clipped);
    this.detail = clipped;
    this.name = 'ScimError';
  }

  toBody(): ScimErrorBody {
    const body: ScimErrorBody = { schemas: [ERROR_SCHEMA], status: String(this.status), detail: this.detail };
    if (this.scimType) body.scimType = this.scimType;
    return body;
  }
}

export const badRequest = (scimType: ScimType, detail: string): ScimError => new ScimError(400, scimType, detail);
export const notFound = (detail: string): ScimError => new ScimError(404, undefined, detail);
