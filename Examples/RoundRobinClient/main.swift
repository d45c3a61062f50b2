import LBPool
