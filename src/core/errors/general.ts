import { defineErrors } from './define.ts';

/** Codes not owned by one subsystem. */
export const GENERAL_ERRORS = defineErrors({
  NMTP_ERR_INTERNAL: {
    temporary: true,
    scope: 'local',
    // "unknown errors are temporary (a wrong defer delays mail, a wrong bounce loses it)"
    summary: 'Unexpected internal error; treated as temporary so no mail is lost',
  },
  NMTP_ERR_CONFIG: {
    temporary: true,
    scope: 'local',
    summary: 'Invalid or missing configuration',
  },
  NMTP_ERR_INVALID_ARGUMENT: {
    temporary: false,
    scope: 'local',
    summary: 'A caller passed a value outside the documented domain',
  },
});
