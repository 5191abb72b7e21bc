/** The reverse direction with real Postfix on the embedded queue (gateway-reverse.suite.ts). */
import { reverseWithPostfix } from './gateway-reverse.suite.ts';

reverseWithPostfix('embedded');
