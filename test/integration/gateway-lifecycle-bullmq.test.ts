/** The recipient lifecycle behind Postfix, on BullMQ in a private Redis (gateway-lifecycle.suite.ts). */
import { lifecycle } from './gateway-lifecycle.suite.ts';

lifecycle('bullmq');
