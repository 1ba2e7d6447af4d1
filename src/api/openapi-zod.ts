import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';

/**
 * zod with `.openapi()` (descriptions, examples, component names). Import `z` from here in any
 * module that calls `.openapi()`, so the extension is installed before the first call.
 */
extendZodWithOpenApi(z);

export { z };
