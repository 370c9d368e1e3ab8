/**
 * HTTP binding of the SCIM layer: an encapsulated fastify plugin mounted at the SCIM base path, so
 * its JSON parser, error handler, 404 handler and authentication hook apply to SCIM routes only.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { runBulk } from './bulk.js';
import { ScimError } from './errors.js';
import { advertisedLimits, checkBody, Gate, SCIM_CONCURRENCY } from './limits.js';
import { parseProjection, returnsAttribute } from './projection.js';
import { GROUPS } from './resources/groups.js';
import type { ResourceKind } from './resources/kind.js';
import { USERS } from './resources/users.js';
import { ALL_SCHEMAS, LIST_RESPONSE, publishAttribute, RESOURCE_TYPES, SEARCH_REQUEST, type ResourceTypeDef, type SchemaDef } from './schema.js';
import { etagMatches, etagOf, type ListQuery, type ScimService } from './service.js';
import { isPlainObject } from './validate.js';

export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

export interface RouteOptions {
  service: ScimService;
  authenticate: (req: FastifyRequest) => Promise<void>;
  basePath: string;
  /** Absolute URL of the SCIM base for meta.location; derived from the request when absent. */
  publicUrl?: string;
}

function send(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('content-type', SCIM_CONTENT_TYPE).send(body);
}

/** Any error thrown under the SCIM base path, as a SCIM error. */
export function toScimError(err: unknown): ScimError {
  if (err instanceof ScimError) return err;
  const e = err as Partial<FastifyError> & { status?: number };
  const status = e.statusCode ?? e.status;
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) return new ScimError(413, undefined, 'the request body is larger than the maximum payload size');
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ScimError(415, undefined, 'send the body as application/scim+json or application/json');
  if (err instanceof SyntaxError || e.code?.startsWith('FST_ERR_CTP') || (status === 400 && e.validation)) {
    return new ScimError(400, 'invalidSyntax', `the request body is not valid JSON: ${e.message ?? ''}`.trim());
  }
  if (typeof status === 'number' && status >= 400 && status < 500) return new ScimError(status, undefined, e.message || 'request rejected');
  return new ScimError(500, undefined, 'internal error in the SCIM service; see the cloud directory log');
}

function schemaResource(s: SchemaDef, base: string): Record<string, unknown> {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
    id: s.id,
    name: s.name,
    description: s.description,
    attributes: s.attributes.map(publishAttribute),
    meta: { resourceType: 'Schema', location: `${base}/Schemas/${s.id}` },
  };
}

function resourceTypeResource(rt: ResourceTypeDef, base: string): Record<string, unknown> {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
    id: rt.name,
    name: rt.name,
    endpoint: rt.endpoint,
    description: rt.description,
    schema: rt.schema.id,
    schemaExtensions: rt.extensions.map((e) => ({ schema: e.id, required: false })),
    meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/${rt.name}` },
  };
}

function listOf(resources: unknown[]): Record<string, unknown> {
  return { schemas: [LIST_RESPONSE], totalResults: resources.length, startIndex: 1, itemsPerPage: resources.length, Resources: resources };
}

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
};

export async function scimPlugin(app: FastifyInstance, opts: RouteOptions): Promise<void> {
  const svc = opts.service;
  const bodyLimit = svc.limits.maxPayloadSize;
  const baseOf = (req: FastifyRequest): string => opts.publicUrl ?? `${req.protocol}://${req.host}${opts.basePath}`;

  // One JSON parser for both media types; an empty body (DELETE with a content-type) is no body.
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // SCIM speaks JSON only: a text/plain body is a 415, not a string that fails validation later.
  app.removeContentTypeParser('text/plain');
  // The work of a request (parsing its body, the handler, serialising the answer) runs holding a
  // slot of `gate`; receiving the body and sending the answer do not, so a slow client holds nothing.
  const gate = new Gate(SCIM_CONCURRENCY);
  const slots = new WeakMap<FastifyRequest, () => void>();
  const finished = new WeakSet<FastifyRequest>();
  const acquire = async (req: FastifyRequest): Promise<void> => {
    if (slots.has(req)) return;
    const free = await gate.enter();
    if (finished.has(req)) free();
    else slots.set(req, free);
  };
  const releaseSlot = (req: FastifyRequest): void => {
    finished.add(req);
    slots.get(req)?.();
  };

  app.addContentTypeParser(['application/json', 'application/scim+json'], { parseAs: 'string', bodyLimit }, async (req: FastifyRequest, body: string | Buffer) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return undefined;
    await acquire(req);
    const parsed = await new Promise<unknown>((resolve, reject) => json(req, text, (err, v) => (err ? reject(err) : resolve(v))));
    checkBody(parsed);
    return parsed;
  });

  app.addHook('onRequest', async (req, reply) => {
    try {
      await opts.authenticate(req);
    } catch (err) {
      if (err instanceof ScimError || (err as { statusCode?: number }).statusCode !== undefined) throw err;
      req.log.warn({ err }, 'SCIM authentication failed');
      throw new ScimError(401, undefined, 'authentication required');
    }
    // 'close' fires once the answer is out or the connection is gone: a slot is never kept.
    reply.raw.once('close', () => releaseSlot(req));
  });
  // Requests without a body (lists and filters) take their slot here, after authentication.
  app.addHook('preHandler', async (req) => acquire(req));
  app.addHook('onSend', async (req) => releaseSlot(req));

  app.setErrorHandler((err, req, reply) => {
    const e = toScimError(err);
    if (e.status >= 500) req.log.error({ err }, 'SCIM request failed');
    if (e.status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer');
    return send(reply, e.status, e.toBody());
  });

  app.setNotFoundHandler((req, reply) => {
    send(reply, 404, new ScimError(404, undefined, `no SCIM endpoint ${req.method} ${req.url.split('?')[0]}`).toBody());
  });

  // ---- discovery -------------------------------------------------------------------------------

  app.get('/ServiceProviderConfig', async (req, reply) => {
    const base = baseOf(req);
    return send(reply, 200, {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
      documentationUri: 'https://github.com/idsync/idsync/blob/main/docs/cloud-directory.md',
      ...advertisedLimits(svc.limits),
      changePassword: { supported: false },
      sort: { supported: true },
      etag: { supported: true },
      authenticationSchemes: [
        {
          type: 'oauthbearertoken',
          name: 'OAuth Bearer Token',
          description: 'Authentication with an OAuth 2.0 bearer token from the cloud directory token endpoint.',
          specUri: 'https://www.rfc-editor.org/info/rfc6750',
          primary: true,
        },
      ],
      meta: { resourceType: 'ServiceProviderConfig', location: `${base}/ServiceProviderConfig` },
    });
  });

  app.get('/Schemas', async (req, reply) => send(reply, 200, listOf(ALL_SCHEMAS.map((s) => schemaResource(s, baseOf(req))))));
  app.get<{ Params: { id: string } }>('/Schemas/:id', async (req, reply) => {
    const s = ALL_SCHEMAS.find((x) => x.id.toLowerCase() === req.params.id.toLowerCase());
    if (!s) throw new ScimError(404, undefined, `schema ${req.params.id} not found`);
    return send(reply, 200, schemaResource(s, baseOf(req)));
  });
  app.get('/ResourceTypes', async (req, reply) => send(reply, 200, listOf(RESOURCE_TYPES.map((rt) => resourceTypeResource(rt, baseOf(req))))));
  app.get<{ Params: { id: string } }>('/ResourceTypes/:id', async (req, reply) => {
    const rt = RESOURCE_TYPES.find((x) => x.name.toLowerCase() === req.params.id.toLowerCase());
    if (!rt) throw new ScimError(404, undefined, `resource type ${req.params.id} not found`);
    return send(reply, 200, resourceTypeResource(rt, baseOf(req)));
  });

  // ---- resources -------------------------------------------------------------------------------

  for (const kind of [USERS, GROUPS] as ResourceKind[]) {
    const ep = kind.type.endpoint;
    type Q = { Querystring: Record<string, string | undefined> };
    type QP = Q & { Params: { id: string } };

    const respond = async (req: FastifyRequest<Q>, reply: FastifyReply, status: number, item: Awaited<ReturnType<ScimService['get']>>) => {
      const projection = parseProjection(kind.type, req.query.attributes, req.query.excludedAttributes);
      const body = await svc.render(kind, item, baseOf(req), projection);
      reply.header('etag', etagOf(item.version));
      if (status === 201) reply.header('location', (body.meta as { location: string }).location);
      return send(reply, status, body);
    };

    app.post<Q>(ep, { bodyLimit }, async (req, reply) => respond(req, reply, 201, await svc.create(kind, req.body)));

    app.get<Q>(ep, async (req, reply) => send(reply, 200, await svc.listResponse(kind, req.query as ListQuery, baseOf(req))));

    app.post<Q>(`${ep}/.search`, { bodyLimit }, async (req, reply) => {
      const b = req.body;
      if (!isPlainObject(b)) throw new ScimError(400, 'invalidSyntax', 'the search body must be a JSON object');
      if (b.schemas !== undefined && !(Array.isArray(b.schemas) && b.schemas.includes(SEARCH_REQUEST))) {
        throw new ScimError(400, 'invalidSyntax', `a search body must have "schemas": ["${SEARCH_REQUEST}"]`);
      }
      return send(reply, 200, await svc.listResponse(kind, b as ListQuery, baseOf(req)));
    });

    app.get<QP>(`${ep}/:id`, async (req, reply) => {
      const projection = parseProjection(kind.type, req.query.attributes, req.query.excludedAttributes);
      const needMembers = kind === GROUPS && returnsAttribute(projection, 'members');
      const item = await svc.get(kind, req.params.id, needMembers);
      const inm = header(req, 'if-none-match');
      if (inm !== undefined && etagMatches(inm, item.version)) return reply.code(304).header('etag', etagOf(item.version)).send();
      return respond(req, reply, 200, item);
    });

    app.put<QP>(`${ep}/:id`, { bodyLimit }, async (req, reply) =>
      respond(req, reply, 200, await svc.replace(kind, req.params.id, req.body, header(req, 'if-match'))),
    );

    app.patch<QP>(`${ep}/:id`, { bodyLimit }, async (req, reply) =>
      respond(req, reply, 200, await svc.patch(kind, req.params.id, req.body, header(req, 'if-match'))),
    );

    app.delete<QP>(`${ep}/:id`, async (req, reply) => {
      await svc.delete(kind, req.params.id, header(req, 'if-match'));
      return reply.code(204).send();
    });
  }

  app.post('/Bulk', { bodyLimit }, async (req, reply) =>
    send(
      reply,
      200,
      await runBulk(svc, req.body, baseOf(req), { onInternalError: (err) => req.log.error({ err }, 'a Bulk operation failed') }),
    ),
  );
}
