/** The recipient lifecycle behind Postfix, on the embedded queue (gateway-lifecycle.suite.ts). */
import { lifecycle } from './gateway-lifecycle.suite.ts';

lifecycle('embedded');
