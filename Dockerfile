# cleave for a fleet: one image for `cleave worker` and `cleave serve`, onnxruntime on the CPU.
#   docker build -t cleave .
#   docker run --rm -p 7000:7000 -e CLEAVE_TOKEN=... cleave worker --listen 0.0.0.0:7000
#   docker run --rm -p 8000:8000 cleave serve zoo:mobilenet_v2 --stages 2 --cluster c.yaml --listen 0.0.0.0:8000

# Build stage: every dependency, then the TypeScript build.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: onnxruntime-node and sharp ship their prebuilt CPU binaries inside their npm packages.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src src
COPY test test
COPY bench bench
RUN npx tsc -p .

# Runtime stage: production dependencies and the built library and CLI only.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/src dist/src
COPY examples/clusters examples/clusters
USER node
EXPOSE 7000 8000 9100
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["--help"]
