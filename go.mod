module pgveil

go 1.26.8

require github.com/brianvoe/gofakeit/v7 v7.18.1

require gopkg.in/yaml.v3 v3.0.1
