import { defineErrors } from './define.ts';

/**
 * Codes of the outgoing queue's backends (src/queue/port.ts): what a backend refuses to
 * store or to run on. Delivery results are not here: they are the transport's codes.
 */
export const QUEUE_ERRORS = defineErrors({
  NMTP_ERR_QUEUE_NOT_DURABLE: {
    temporary: true,
    scope: 'local',
    summary:
      "The queue's Redis does not make writes durable (it needs appendonly yes, appendfsync always, maxmemory-policy noeviction): the queue refuses to start.",
  },
  NMTP_ERR_QUEUE_MESSAGE_TOO_LARGE: {
    temporary: false,
    scope: 'message',
    summary: "The message is larger than the queue backend's configured maximum.",
  },
  NMTP_ERR_QUEUE_IN_USE: {
    temporary: true,
    scope: 'local',
    summary:
      'Another running process owns this queue directory (its owner file names it); a second one would take its live files for crash leftovers.',
  },
  NMTP_ERR_QUEUE_LOCK_LOST: {
    temporary: true,
    scope: 'local',
    summary:
      'A queue worker lost its lock on an entry (it expired while the worker was stalled); its change was not stored.',
  },
});
