/** The reverse direction with real Postfix on the BullMQ backend (gateway-reverse.suite.ts). */
import { reverseWithPostfix } from './gateway-reverse.suite.ts';

reverseWithPostfix('bullmq');
