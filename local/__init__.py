"""The no-Docker local stack behind `make run`: never deployed.

Modules:
    template  reads template.yaml (CloudFormation short tags, parameter defaults, conditions)
    issuer    a local JWT issuer and its JWKS endpoint
    events    API Gateway HTTP API payload 2.0 events and responses, the Lambda context
    gateway   the HTTP API emulator (JWT authorizer, routes from the template) and the function URL emulator
    aws       the embedded AWS stand-in (moto server), the table and bucket from the template, DynamoDB Local
    stack     LocalStack: everything above wired together on loopback ports
    seed      realistic demo tasks through the public API
"""
