// Pulumi component for bloom-operator. For Pulumi programs only: the operator
// binary never imports this directory (a unit test checks it).
export { BloomOperator, operatorArgs, DEFAULT_IMAGE, type BloomOperatorArgs, type RbacScope, type LogLevel } from './operator.js';
export { BloomDeployment, type BloomDeploymentArgs, type BloomDeploymentSpecArgs, type DeepInput } from './bloom-deployment.js';
export { loadCrd, loadRbacRules, type PolicyRule, type RbacRules } from './files.js';
