-- Near-duplicate clusters found by the near_dedup stage (forge.text.dedup): one row per document
-- in a cluster of two or more, the kept one included.
with source as (
    select * from {{ source('raw', 'near_duplicate_clusters') }}
),

final as (
    select
        cluster_id,
        doc_id,
        is_kept,
        kept_doc_id,
        cast(similarity_to_kept as double) as similarity_to_kept,
        cluster_size as n_cluster_documents,
        category,
        source,
        n_chars
    from source
)

select * from final
