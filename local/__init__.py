"""The no-Docker local stack behind `make run`: never deployed.

Modules:
    template       reads template.yaml (CloudFormation short tags, parameter defaults, conditions)
    issuer         a local JWT issuer and its JWKS endpoint
    events         API Gateway HTTP API payload 2.0 events and responses, the Lambda context
    server         loopback HTTP servers (threaded HTTP/1.1 for emulators and WSGI, uvicorn for ASGI)
    gateway        the HTTP API emulator (JWT authorizer, routes from the template) and the function URL emulator
    aws            the embedded AWS stand-in (moto), the table and bucket from the template, DynamoDB Local
    s3_post        presigned POST policies enforced as S3 does (moto accepts any upload)
    notifications  S3 Object Created events to the functions of the template's EventBridge rules
    stack          LocalStack (everything above, in this process) and StackProcess (`python -m local run`)
    seed           realistic demo tasks through the public API
"""
